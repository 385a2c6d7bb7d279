//! The client side of an upload: what `heapfleet upload` and the agent call. Every call
//! carries the caller's trace context, so a traced agent's upload and the gateway's handling of
//! it are one trace.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use futures::StreamExt;
use heapfleet_proto::ingest::v1 as pb;
use heapfleet_proto::ingest::v1::ingest_service_client::IngestServiceClient;
use heapfleet_service::tls::{ClientChannel, ClientOptions};
use tokio::io::AsyncReadExt;
use tracing::Instrument;

/// Bytes per upload message: well under the gateway's message limit, large enough that the
/// per-message overhead does not matter.
pub const CHUNK_BYTES: usize = 1 << 20;

/// Called with the number of bytes just sent (for progress bars).
pub type SendProgress = Arc<dyn Fn(u64) + Send + Sync>;

/// A client of the ingest API: every call carries the caller's trace context and, when one
/// was given, the bearer token.
pub type IngestClient = IngestServiceClient<ClientChannel>;

/// Connects to a gateway (`http://host:port`) without a token or a private CA, failing with a
/// message that names it.
pub async fn connect(url: &str) -> anyhow::Result<IngestClient> {
    connect_with(url, &ClientOptions::default()).await
}

/// Connects to a gateway (`http://` or `https://host:port`) with a token and a CA to trust.
pub async fn connect_with(url: &str, options: &ClientOptions) -> anyhow::Result<IngestClient> {
    let endpoint = options
        .endpoint(url)?
        .initial_stream_window_size(heapfleet_service::server::STREAM_WINDOW_BYTES)
        .initial_connection_window_size(heapfleet_service::server::CONNECTION_WINDOW_BYTES);
    let channel = options.connect(endpoint, url).await?;
    Ok(IngestServiceClient::new(channel)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(CHUNK_BYTES + 4096))
}

/// Uploads the dump file at `path` with `metadata` (its size, hash and encoding are filled in
/// here: the file is read once to hash it, then streamed in [`CHUNK_BYTES`] messages).
pub async fn upload_file(
    client: &mut IngestClient,
    path: &Path,
    mut metadata: pb::DumpMetadata,
    progress: Option<SendProgress>,
) -> anyhow::Result<pb::UploadDumpResponse> {
    let hash_path = path.to_path_buf();
    let (size, sha256) =
        tokio::task::spawn_blocking(move || heapfleet_ingest::file_size_and_sha256(&hash_path))
            .await??;
    let mut file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("cannot open {}", path.display()))?;
    let mut magic = [0u8; 2];
    let gzip = file.read_exact(&mut magic).await.is_ok() && magic == [0x1f, 0x8b];
    let file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("cannot open {}", path.display()))?;
    metadata.size_bytes = size;
    metadata.sha256 = sha256;
    metadata.content_encoding = if gzip {
        pb::ContentEncoding::Gzip
    } else {
        pb::ContentEncoding::Plain
    } as i32;
    if metadata.file_name.is_empty() {
        metadata.file_name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
    }
    let first = pb::UploadDumpRequest {
        part: Some(pb::upload_dump_request::Part::Metadata(metadata)),
    };
    let chunks = tokio_util::io::ReaderStream::with_capacity(file, CHUNK_BYTES)
        .take_while(|read| {
            // A read error ends the stream early; the gateway then refuses the truncated upload
            // and the error is reported below from the file itself.
            let ok = read.is_ok();
            async move { ok }
        })
        .filter_map(move |read| {
            let progress = progress.clone();
            async move {
                let bytes = read.ok()?;
                if let Some(progress) = &progress {
                    progress(bytes.len() as u64);
                }
                Some(pb::UploadDumpRequest {
                    part: Some(pb::upload_dump_request::Part::Chunk(bytes)),
                })
            }
        });
    let requests = futures::stream::iter([first]).chain(chunks);
    // The client's span of the upload, the parent of the gateway's when telemetry is on.
    let span = tracing::info_span!(
        "upload",
        otel.name = "upload dump",
        otel.kind = "client",
        file = %path.display(),
        bytes = size,
    );
    let response = client
        .upload_dump(requests)
        .instrument(span)
        .await
        .map_err(CallError::from)
        .with_context(|| format!("upload of {} refused", path.display()))?;
    Ok(response.into_inner())
}

/// What a server answered instead of accepting a call. Callers ask it what to do
/// ([`CallError::is_refusal`], [`CallError::is_retryable`], [`CallError::is_wrong_server`]);
/// it stays reachable through the `anyhow` context the client adds
/// (`error.downcast_ref::<CallError>()`).
#[derive(Debug, thiserror::Error)]
#[error("{}", self.describe())]
pub struct CallError {
    code: tonic::Code,
    message: String,
}

impl From<tonic::Status> for CallError {
    fn from(status: tonic::Status) -> CallError {
        CallError {
            code: status.code(),
            message: status.message().to_owned(),
        }
    }
}

impl CallError {
    /// The gRPC code the server answered.
    pub fn code(&self) -> tonic::Code {
        self.code
    }

    /// The server refused this file (invalid, or over a limit): sending it again cannot help.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self.code,
            tonic::Code::InvalidArgument | tonic::Code::ResourceExhausted
        )
    }

    /// The server, or the connection to it, failed for now: the same call may succeed later.
    /// (Unknown and Cancelled are what a connection cut mid-stream looks like.)
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.code,
            tonic::Code::Unavailable
                | tonic::Code::Unknown
                | tonic::Code::Cancelled
                | tonic::Code::DeadlineExceeded
        )
    }

    /// The server does not offer the call at all: it is not a gateway (a query service, say).
    pub fn is_wrong_server(&self) -> bool {
        self.code == tonic::Code::Unimplemented
    }

    fn describe(&self) -> String {
        if self.is_wrong_server() {
            "this server takes no uploads (a query service?): point --server at the gateway \
             or at `heapfleet serve`"
                .to_owned()
        } else {
            format!("{}: {}", code_name(self.code), self.message)
        }
    }
}

/// A gRPC code as people read it in error messages.
pub fn code_name(code: tonic::Code) -> String {
    format!("{code:?}")
}
