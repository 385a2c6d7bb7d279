//! `heapfleet.ingest.v1.IngestService` on the catalog and object-store backends (and, for
//! deletes, the aggregate store).

use std::sync::Arc;

use heapfleet_catalog::{Catalog, CatalogError, DumpFilter, DumpId, NewDump};
use heapfleet_ingest::{DeleteError, DumpDeleter};
use heapfleet_objects::object_store::path::Path as ObjectPath;
use heapfleet_objects::object_store::{ObjectStoreExt, WriteMultipart};
use heapfleet_objects::{DumpCompression, DumpKey, dumps_prefix};
use heapfleet_proto::ingest::v1 as pb;
use heapfleet_proto::ingest::v1::ingest_service_server::{IngestService, IngestServiceServer};
use heapfleet_service::auth::Principal;
use heapfleet_service::backends::Objects;
use heapfleet_service::convert::{dump_to_proto, kind_of};
use heapfleet_service::status;
use heapfleet_storage::AggregateStore;
use heapfleet_telemetry::metrics::GatewayMetrics;
use heapfleet_telemetry::propagation::current_trace_context;
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status, Streaming};

use crate::{Limits, check_metadata};

/// The full gRPC name of the service, for health statuses.
pub const INGEST_SERVICE_NAME: &str = "heapfleet.ingest.v1.IngestService";

/// Parts of an upload written to object storage at once, each [`PART_BYTES`] long: bounds
/// the gateway's memory per upload to about `PARTS_IN_FLIGHT * PART_BYTES`.
const PARTS_IN_FLIGHT: usize = 4;
/// The size of one multipart part (S3 requires at least 5 MiB for all but the last).
const PART_BYTES: usize = 8 << 20;

/// The gateway's ingest service.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// The tenant of calls that carry no [`Principal`] (authentication off).
    tenant: String,
    catalog: Arc<dyn Catalog>,
    objects: Objects,
    limits: Limits,
    metrics: GatewayMetrics,
    /// The aggregate store and what deletes from all three backends; `None` refuses deletes.
    deletes: Option<(Arc<dyn AggregateStore>, DumpDeleter)>,
}

impl Gateway {
    /// A gateway on these backends; with authentication off, every call is `tenant`'s, else
    /// each call's token names its tenant.
    pub fn new(
        tenant: impl Into<String>,
        catalog: Arc<dyn Catalog>,
        objects: Objects,
        limits: Limits,
    ) -> Gateway {
        Gateway {
            tenant: tenant.into(),
            catalog,
            objects,
            limits,
            metrics: GatewayMetrics::new(),
            deletes: None,
        }
    }

    /// Lets the gateway delete dumps (`DeleteDump`): `store` must be the aggregate store the
    /// ingesters write, or a delete would leave the dump's aggregates behind.
    pub fn with_store(mut self, store: Arc<dyn AggregateStore>) -> Gateway {
        let deleter = DumpDeleter::new(
            self.catalog.clone(),
            store.clone(),
            self.objects.store.clone(),
            self.objects.prefix.clone(),
        );
        self.deletes = Some((store, deleter));
        self
    }

    /// The aggregate store deletes remove aggregates from, when the gateway has one.
    pub fn store(&self) -> Option<Arc<dyn AggregateStore>> {
        self.deletes.as_ref().map(|(store, _)| store.clone())
    }

    /// The catalog this gateway registers dumps in.
    pub fn catalog(&self) -> Arc<dyn Catalog> {
        self.catalog.clone()
    }

    /// The object store this gateway writes dump files to.
    pub fn objects(&self) -> Objects {
        self.objects.clone()
    }

    /// The gRPC service, with the message size limit applied.
    /// The tenant of calls without a token (authentication off).
    pub fn default_tenant(&self) -> &str {
        &self.tenant
    }

    /// The gRPC service.
    pub fn into_server(self) -> IngestServiceServer<Gateway> {
        let max_message_bytes = self.limits.max_message_bytes;
        IngestServiceServer::new(self)
            .max_decoding_message_size(max_message_bytes)
            .max_encoding_message_size(64 << 20)
    }

    /// Registers a durable dump file and queues its ingest, in one catalog transaction.
    async fn register(
        &self,
        mut new_dump: NewDump,
        key: &ObjectPath,
    ) -> Result<(pb::Dump, bool), Status> {
        new_dump.object_key = Some(key.to_string());
        // The job carries this call's trace context, so the ingest's span links to the upload.
        let (record, created) = self
            .catalog
            .register_and_enqueue_traced(new_dump, current_trace_context().as_deref())
            .await
            .map_err(|error| status::from_catalog(&error))?;
        if created {
            self.metrics.queued();
            tracing::info!(dump = %record.id, key = %key, size = record.size_bytes, "dump registered and queued");
        }
        Ok((dump_to_proto(&record), created))
    }

    /// Receives the chunks of an upload into a multipart write at `key`, checking the size and
    /// hash; completes the write only when both match.
    async fn receive(
        &self,
        stream: &mut Streaming<pb::UploadDumpRequest>,
        new_dump: &NewDump,
        key: &ObjectPath,
    ) -> Result<(), Status> {
        let upload = self
            .objects
            .store
            .put_multipart(key)
            .await
            .map_err(|error| status::from_object_store("cannot start the upload", &error))?;
        let mut write = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let expected = new_dump.size_bytes;
        let mut received: u64 = 0;
        let mut hasher = Sha256::new();
        let outcome: Result<(), Status> = async {
            loop {
                let message = stream.message().await?;
                let Some(message) = message else { break };
                let chunk = match message.part {
                    Some(pb::upload_dump_request::Part::Chunk(chunk)) => chunk,
                    Some(pb::upload_dump_request::Part::Metadata(_)) => {
                        return Err(Status::invalid_argument(
                            "metadata may only be sent in the first message",
                        ));
                    }
                    None => continue,
                };
                received += chunk.len() as u64;
                if received > expected {
                    return Err(Status::invalid_argument(format!(
                        "the upload sent more than the {expected} bytes its metadata announced"
                    )));
                }
                hasher.update(&chunk);
                write
                    .wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(|error| status::from_object_store("cannot store the upload", &error))?;
                write.put(chunk);
            }
            if received != expected {
                return Err(Status::invalid_argument(format!(
                    "the upload ended after {received} of the {expected} bytes its metadata announced (truncated stream)"
                )));
            }
            let digest = hasher.finalize_reset();
            let actual: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
            if actual != new_dump.content_sha256 {
                return Err(Status::invalid_argument(format!(
                    "the upload's SHA-256 is {actual}, not the {} its metadata announced",
                    new_dump.content_sha256
                )));
            }
            Ok(())
        }
        .await;
        match outcome {
            Ok(()) => {
                write.finish().await.map_err(|error| {
                    status::from_object_store("cannot complete the upload", &error)
                })?;
                self.objects.sync(key).await.map_err(|error| {
                    status::backend_failure(
                        tonic::Code::Unavailable,
                        "cannot sync the stored dump to disk",
                        &error,
                    )
                })?;
                Ok(())
            }
            Err(error) => {
                if let Err(abort_error) = write.abort().await {
                    tracing::warn!(key = %key, error = %abort_error, "cannot abort a failed upload");
                }
                Err(error)
            }
        }
    }
}

#[tonic::async_trait]
impl IngestService for Gateway {
    async fn upload_dump(
        &self,
        request: Request<Streaming<pb::UploadDumpRequest>>,
    ) -> Result<Response<pb::UploadDumpResponse>, Status> {
        let tenant = Principal::of(&request, &self.tenant).tenant;
        let mut stream = request.into_inner();
        let first = stream
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("the upload sent no message"))?;
        let Some(pb::upload_dump_request::Part::Metadata(metadata)) = first.part else {
            return Err(Status::invalid_argument(
                "the first message of an upload must carry the dump's metadata",
            ));
        };
        let new_dump = check_metadata(&tenant, &metadata, &self.limits)?;
        let id = new_dump.dump_id();
        // The same content from the same process again: the stored dump is that content (its
        // hash was checked at its upload), so there is nothing more to receive.
        // A catalog that cannot answer fails the upload now, before any byte is stored.
        match self.catalog.get_dump(&id).await {
            Ok(_) => {
                let key = self.key_for(&new_dump, &id, &metadata)?;
                let (dump, created) = self.register(new_dump, &key).await?;
                return Ok(Response::new(pb::UploadDumpResponse {
                    dump: Some(dump),
                    created,
                }));
            }
            Err(CatalogError::NotFound(_)) => {}
            Err(error) => return Err(status::from_catalog(&error)),
        }
        let key = self.key_for(&new_dump, &id, &metadata)?;
        let started = std::time::Instant::now();
        self.receive(&mut stream, &new_dump, &key).await?;
        self.metrics.stored(new_dump.size_bytes);
        let seconds = started.elapsed().as_secs_f64();
        tracing::info!(
            dump = %id,
            bytes = new_dump.size_bytes,
            mb_per_second = new_dump.size_bytes as f64 / 1e6 / seconds.max(1e-9),
            "upload stored"
        );
        let (dump, created) = self.register(new_dump, &key).await?;
        Ok(Response::new(pb::UploadDumpResponse {
            dump: Some(dump),
            created,
        }))
    }

    async fn register_dump(
        &self,
        request: Request<pb::RegisterDumpRequest>,
    ) -> Result<Response<pb::RegisterDumpResponse>, Status> {
        let tenant = Principal::of(&request, &self.tenant).tenant;
        let request = request.into_inner();
        let metadata = request
            .metadata
            .ok_or_else(|| Status::invalid_argument("metadata is required"))?;
        let new_dump = check_metadata(&tenant, &metadata, &self.limits)?;
        let key = ObjectPath::parse(&request.object_key).map_err(|error| {
            Status::invalid_argument(format!(
                "object_key {:?} is not a valid key: {error}",
                request.object_key
            ))
        })?;
        let tenant_prefix = dumps_prefix(&self.objects.prefix, &tenant)
            .map_err(|error| status::from_objects(&error))?;
        if !key.prefix_matches(&tenant_prefix) {
            return Err(Status::invalid_argument(format!(
                "object_key {key} is not under this tenant's dumps ({tenant_prefix}/)"
            )));
        }
        let size =
            self.objects.size(&key).await.map_err(|error| {
                status::from_object_store(&format!("cannot read {key}"), &error)
            })?;
        if size != new_dump.size_bytes {
            return Err(Status::invalid_argument(format!(
                "{key} is {size} bytes, not the {} the metadata says",
                new_dump.size_bytes
            )));
        }
        let (dump, created) = self.register(new_dump, &key).await?;
        Ok(Response::new(pb::RegisterDumpResponse {
            dump: Some(dump),
            created,
        }))
    }

    async fn get_dump(
        &self,
        request: Request<pb::GetDumpRequest>,
    ) -> Result<Response<pb::Dump>, Status> {
        let tenant = Principal::of(&request, &self.tenant).tenant;
        let id: DumpId = request
            .into_inner()
            .dump_id
            .parse()
            .map_err(|error| status::from_catalog(&error))?;
        let record = self
            .catalog
            .get_dump(&id)
            .await
            .map_err(|error| status::from_catalog(&error))?;
        // Another tenant's dump is as absent as one that does not exist.
        if record.process.tenant != tenant {
            return Err(Status::not_found(format!("dump {id} not found")));
        }
        Ok(Response::new(dump_to_proto(&record)))
    }

    async fn list_dumps(
        &self,
        request: Request<pb::ListDumpsRequest>,
    ) -> Result<Response<pb::ListDumpsResponse>, Status> {
        let tenant = Principal::of(&request, &self.tenant).tenant;
        let request = request.into_inner();
        let non_empty = |text: String| (!text.is_empty()).then_some(text);
        let state = pb::DumpState::try_from(request.state)
            .map_err(|_| Status::invalid_argument(format!("unknown state {}", request.state)))?;
        let filter = DumpFilter {
            tenant,
            host: non_empty(request.host),
            pid: request.pid,
            instance: non_empty(request.instance),
            role: non_empty(request.role),
            labels: request.labels.into_iter().collect(),
            taken_after: request.taken_after_unix,
            taken_before: request.taken_before_unix,
            status: kind_of(state),
        };
        let records = self
            .catalog
            .list_dumps(&filter)
            .await
            .map_err(|error| status::from_catalog(&error))?;
        Ok(Response::new(pb::ListDumpsResponse {
            dumps: records.iter().map(dump_to_proto).collect(),
        }))
    }

    async fn delete_dump(
        &self,
        request: Request<pb::DeleteDumpRequest>,
    ) -> Result<Response<pb::DeleteDumpResponse>, Status> {
        // The auth layer lets only admin tokens this far; the dump must be their tenant's.
        let tenant = Principal::of(&request, &self.tenant).tenant;
        let id: DumpId = request
            .into_inner()
            .dump_id
            .parse()
            .map_err(|error| status::from_catalog(&error))?;
        let Some((_, deleter)) = &self.deletes else {
            return Err(Status::failed_precondition(
                "this gateway has no aggregate store configured (`store`), so it cannot delete dumps",
            ));
        };
        let deleted = deleter
            .delete(&tenant, &id)
            .await
            .map_err(|error| delete_status(&error))?;
        tracing::info!(
            dump = %id,
            host = %deleted.dump.process.host,
            pid = deleted.dump.process.pid,
            taken_at_unix = deleted.dump.taken_at_unix,
            object = deleted.object.as_str(),
            "dump deleted on request"
        );
        Ok(Response::new(pb::DeleteDumpResponse {
            dump: Some(dump_to_proto(&deleted.dump)),
            object: deleted.object.as_str().to_owned(),
        }))
    }
}

/// The status for a failed delete: a live ingest is a state the client waits out
/// (FAILED_PRECONDITION), everything else maps as the backend's error does.
fn delete_status(error: &DeleteError) -> Status {
    match error {
        DeleteError::Catalog(catalog_error) if error.is_being_ingested() => {
            Status::failed_precondition(status::error_chain(catalog_error))
        }
        DeleteError::Catalog(catalog_error) => status::from_catalog(catalog_error),
        DeleteError::Store { source, .. } => {
            let store_status = status::from_storage(source);
            Status::new(store_status.code(), status::error_chain(error))
        }
        DeleteError::Object { source, .. } => status::from_object_store(&error.to_string(), source),
    }
}

impl Gateway {
    /// The object key of an upload, from the layout every dump file follows.
    fn key_for(
        &self,
        new_dump: &NewDump,
        id: &DumpId,
        metadata: &pb::DumpMetadata,
    ) -> Result<ObjectPath, Status> {
        let compression = if metadata.content_encoding == pb::ContentEncoding::Gzip as i32 {
            DumpCompression::Gzip
        } else {
            DumpCompression::None
        };
        DumpKey {
            tenant: &new_dump.process.tenant,
            host: &new_dump.process.host,
            pid: new_dump.process.pid,
            instance: &new_dump.process.instance,
            dump_id: id.as_str(),
            compression,
        }
        .path(&self.objects.prefix)
        .map_err(|error| status::from_objects(&error))
    }
}
