//! `heapfleet.query.v1.QueryService` over [`StoreQueries`].

use heapfleet_analysis::PathTarget;
use heapfleet_proto::ingest::v1 as ingest_pb;
use heapfleet_proto::query::v1 as pb;
use heapfleet_proto::query::v1::query_service_server::{QueryService, QueryServiceServer};
use heapfleet_service::auth::Principal;
use heapfleet_service::convert::{dump_to_proto, kind_of};
use tonic::{Request, Response, Status};

use crate::convert;
use crate::model::{DominatorsQuery, DumpQuery, RollupQuery};
use crate::reader::{Queries, StoreQueries};

/// The full gRPC name of the service, for health statuses.
pub const QUERY_SERVICE_NAME: &str = "heapfleet.query.v1.QueryService";

/// Rows a ranked list returns when the request does not say.
const DEFAULT_TOP: usize = 20;

/// The query service.
#[derive(Debug, Clone)]
pub struct QueryServer {
    queries: StoreQueries,
}

impl QueryServer {
    /// Serves `queries`.
    pub fn new(queries: StoreQueries) -> QueryServer {
        QueryServer { queries }
    }

    /// The queries of the caller's tenant: the token's, or the server's own tenant when
    /// authentication is off.
    fn queries_for<T>(&self, request: &Request<T>) -> StoreQueries {
        let principal = Principal::of(request, self.queries.tenant());
        self.queries.for_tenant(principal.tenant)
    }

    /// The gRPC service.
    pub fn into_server(self) -> QueryServiceServer<QueryServer> {
        QueryServiceServer::new(self).max_encoding_message_size(64 << 20)
    }
}

fn top_or_default(top: u32) -> usize {
    if top == 0 { DEFAULT_TOP } else { top as usize }
}

#[tonic::async_trait]
impl QueryService for QueryServer {
    async fn list_processes(
        &self,
        request: Request<pb::ListProcessesRequest>,
    ) -> Result<Response<pb::ListProcessesResponse>, Status> {
        let queries = self.queries_for(&request);
        let scope = convert::selector_from(request.into_inner().scope);
        let processes = queries.list_processes(&scope).await?;
        Ok(Response::new(pb::ListProcessesResponse {
            processes: processes.iter().map(convert::process_to).collect(),
        }))
    }

    async fn list_dumps(
        &self,
        request: Request<ingest_pb::ListDumpsRequest>,
    ) -> Result<Response<ingest_pb::ListDumpsResponse>, Status> {
        let queries = self.queries_for(&request);
        let request = request.into_inner();
        let non_empty = |text: String| (!text.is_empty()).then_some(text);
        let state = ingest_pb::DumpState::try_from(request.state)
            .map_err(|_| Status::invalid_argument(format!("unknown state {}", request.state)))?;
        let query = DumpQuery {
            host: non_empty(request.host),
            pid: request.pid,
            role: non_empty(request.role),
            labels: request.labels.into_iter().collect(),
            taken_after: request.taken_after_unix,
            taken_before: request.taken_before_unix,
            status: kind_of(state),
        };
        let dumps = queries.list_dumps(&query).await?;
        let dumps = dumps
            .iter()
            .filter(|dump| request.instance.is_empty() || dump.process.instance == request.instance)
            .map(dump_to_proto)
            .collect();
        Ok(Response::new(ingest_pb::ListDumpsResponse { dumps }))
    }

    async fn dump_summary(
        &self,
        request: Request<pb::DumpSummaryRequest>,
    ) -> Result<Response<pb::DumpSummaryResponse>, Status> {
        let queries = self.queries_for(&request);
        let summary = queries.dump_summary(&request.into_inner().dump_id).await?;
        Ok(Response::new(convert::summary_to(&summary)))
    }

    async fn rollup(
        &self,
        request: Request<pb::RollupRequest>,
    ) -> Result<Response<pb::RollupResponse>, Status> {
        let queries = self.queries_for(&request);
        let request = request.into_inner();
        let query = RollupQuery {
            by: convert::group_by_from(request.by)?,
            generations: convert::generations_from(request.generations),
            rank: convert::rank_from(request.rank)?,
            top: top_or_default(request.top),
        };
        let rollup = queries.rollup(&request.dump_id, query).await?;
        Ok(Response::new(convert::rollup_to(&rollup)))
    }

    async fn generation_detail(
        &self,
        request: Request<pb::GenerationDetailRequest>,
    ) -> Result<Response<pb::GenerationDetailResponse>, Status> {
        let queries = self.queries_for(&request);
        let request = request.into_inner();
        let detail = queries
            .generation_detail(
                &request.dump_id,
                convert::generations_from(request.generations),
                top_or_default(request.top),
            )
            .await?;
        Ok(Response::new(convert::detail_to(&detail)))
    }

    async fn diff_dumps(
        &self,
        request: Request<pb::DiffDumpsRequest>,
    ) -> Result<Response<pb::DiffDumpsResponse>, Status> {
        let queries = self.queries_for(&request);
        let request = request.into_inner();
        let diff = queries
            .diff(&request.dump_ids, request.top as usize)
            .await?;
        Ok(Response::new(convert::diff_to(&diff)))
    }

    async fn leak_report(
        &self,
        request: Request<pb::LeakReportRequest>,
    ) -> Result<Response<pb::LeakReportResponse>, Status> {
        let queries = self.queries_for(&request);
        let request = request.into_inner();
        let scope = convert::selector_from(request.scope);
        let report = queries
            .leak_report(
                &scope,
                top_or_default(request.top),
                convert::leak_rank_from(request.rank)?,
            )
            .await?;
        Ok(Response::new(convert::leak_report_to(&report)))
    }

    async fn compare_groups(
        &self,
        request: Request<pb::CompareGroupsRequest>,
    ) -> Result<Response<pb::CompareGroupsResponse>, Status> {
        let queries = self.queries_for(&request);
        let request = request.into_inner();
        let a = convert::selector_from(request.a);
        let b = convert::selector_from(request.b);
        let comparison = queries.compare(&a, &b, top_or_default(request.top)).await?;
        Ok(Response::new(convert::comparison_to(&comparison)))
    }

    async fn site_timeline(
        &self,
        request: Request<pb::SiteTimelineRequest>,
    ) -> Result<Response<pb::SiteTimelineResponse>, Status> {
        let queries = self.queries_for(&request);
        let request = request.into_inner();
        let scope = convert::selector_from(request.scope);
        let timeline = queries
            .site_timeline(&request.file, request.line, &scope)
            .await?;
        Ok(Response::new(convert::timeline_to(&timeline)))
    }

    async fn retainer_paths(
        &self,
        request: Request<pb::RetainerPathsRequest>,
    ) -> Result<Response<pb::RetainerPathsResponse>, Status> {
        let queries = self.queries_for(&request);
        let request = request.into_inner();
        let target = match request.address {
            Some(address) => PathTarget::Address(address),
            None if !request.file.is_empty() => PathTarget::Site {
                file: request.file,
                line: request.line,
            },
            None => {
                return Err(Status::invalid_argument(
                    "give a file and line, or an address",
                ));
            }
        };
        let max_paths = if request.max_paths == 0 {
            5
        } else {
            request.max_paths as usize
        };
        let answer = queries
            .retainer_paths(&request.dump_id, &target, max_paths.min(100))
            .await?;
        Ok(Response::new(convert::paths_to(&answer)))
    }

    async fn retained(
        &self,
        request: Request<pb::RetainedRequest>,
    ) -> Result<Response<pb::RetainedResponse>, Status> {
        let queries = self.queries_for(&request);
        let request = request.into_inner();
        let by = convert::retained_by_from(request.by)?;
        let answer = queries
            .retained(&request.dump_id, by, top_or_default(request.top))
            .await?;
        Ok(Response::new(convert::retained_to(&answer)))
    }

    async fn dominators(
        &self,
        request: Request<pb::DominatorsRequest>,
    ) -> Result<Response<pb::DominatorsResponse>, Status> {
        let queries = self.queries_for(&request);
        let request = request.into_inner();
        let query = DominatorsQuery {
            from_address: request.from_address,
            depth: if request.depth == 0 {
                3
            } else {
                request.depth.min(50)
            },
            top: if request.top == 0 {
                10
            } else {
                (request.top as usize).min(1_000)
            },
        };
        let answer = queries.dominators(&request.dump_id, query).await?;
        Ok(Response::new(convert::dominators_to(&answer)))
    }
}
