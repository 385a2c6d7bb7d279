//! [`RemoteQueries`]: the queries asked of a query service over gRPC. Every call carries the
//! caller's trace context, so the service's span of it joins the caller's trace.

use async_trait::async_trait;
use heapfleet_analysis::{GenerationFilter, LeakRank, LeakReport, PathTarget};
use heapfleet_catalog::{DumpRecord, ProcessSummary};
use heapfleet_proto::ingest::v1 as ingest_pb;
use heapfleet_proto::query::v1 as pb;
use heapfleet_proto::query::v1::query_service_client::QueryServiceClient;
use heapfleet_service::convert::{dump_from_proto, state_of};
use heapfleet_service::tls::{ClientChannel, ClientOptions};

use crate::QueryError;
use crate::convert;
use crate::model::{
    DominatorsQuery, DumpDiff, DumpDominators, DumpGenerationDetail, DumpQuery, DumpRetained,
    DumpRetainerPaths, DumpRollup, DumpSummary, GroupComparison, RetainedBy, RollupQuery,
    SiteTimeline,
};
use crate::reader::Queries;

/// A query service at a URL.
#[derive(Debug, Clone)]
pub struct RemoteQueries {
    client: QueryServiceClient<ClientChannel>,
    url: String,
}

impl RemoteQueries {
    /// Connects to the query service at `url` (`http://host:port`), without a token.
    pub async fn connect(url: &str) -> Result<RemoteQueries, QueryError> {
        RemoteQueries::connect_with(url, &ClientOptions::default()).await
    }

    /// Connects to the query service at `url` (`http://` or `https://host:port`) with a token
    /// and a CA to trust.
    pub async fn connect_with(
        url: &str,
        options: &ClientOptions,
    ) -> Result<RemoteQueries, QueryError> {
        let endpoint = options
            .endpoint(url)
            .map_err(|error| QueryError::Invalid(format!("{error:#}")))?;
        let channel = options
            .connect(endpoint, url)
            .await
            .map_err(|error| QueryError::Unavailable(format!("{error:#}")))?;
        Ok(RemoteQueries {
            client: QueryServiceClient::new(channel).max_decoding_message_size(64 << 20),
            url: url.to_owned(),
        })
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

#[async_trait]
impl Queries for RemoteQueries {
    async fn list_processes(&self, scope: &DumpQuery) -> Result<Vec<ProcessSummary>, QueryError> {
        let response = self
            .client
            .clone()
            .list_processes(pb::ListProcessesRequest {
                scope: Some(convert::selector_to(scope)),
            })
            .await?
            .into_inner();
        // The server's tenant is implicit in every answer.
        Ok(response
            .processes
            .into_iter()
            .map(|process| convert::process_from("", process))
            .collect())
    }

    async fn list_dumps(&self, query: &DumpQuery) -> Result<Vec<DumpRecord>, QueryError> {
        let request = ingest_pb::ListDumpsRequest {
            host: query.host.clone().unwrap_or_default(),
            pid: query.pid,
            instance: String::new(),
            role: query.role.clone().unwrap_or_default(),
            labels: query.labels.clone().into_iter().collect(),
            taken_after_unix: query.taken_after,
            taken_before_unix: query.taken_before,
            state: query
                .status
                .map_or(ingest_pb::DumpState::Unspecified, state_of) as i32,
        };
        let response = self.client.clone().list_dumps(request).await?.into_inner();
        response
            .dumps
            .into_iter()
            .map(|dump| {
                dump_from_proto(dump).map_err(|error| QueryError::Internal(format!("{error:#}")))
            })
            .collect()
    }

    async fn dump_summary(&self, reference: &str) -> Result<DumpSummary, QueryError> {
        let response = self
            .client
            .clone()
            .dump_summary(pb::DumpSummaryRequest {
                dump_id: reference.to_owned(),
            })
            .await?
            .into_inner();
        convert::summary_from(response)
    }

    async fn rollup(&self, reference: &str, query: RollupQuery) -> Result<DumpRollup, QueryError> {
        let response = self
            .client
            .clone()
            .rollup(pb::RollupRequest {
                dump_id: reference.to_owned(),
                by: convert::group_by_to(query.by) as i32,
                generations: Some(convert::generations_to(query.generations)),
                rank: convert::rank_to(query.rank) as i32,
                top: u32::try_from(query.top).unwrap_or(u32::MAX),
            })
            .await?
            .into_inner();
        convert::rollup_from(response)
    }

    async fn generation_detail(
        &self,
        reference: &str,
        generations: GenerationFilter,
        top: usize,
    ) -> Result<DumpGenerationDetail, QueryError> {
        let response = self
            .client
            .clone()
            .generation_detail(pb::GenerationDetailRequest {
                dump_id: reference.to_owned(),
                generations: Some(convert::generations_to(generations)),
                top: u32::try_from(top).unwrap_or(u32::MAX),
            })
            .await?
            .into_inner();
        convert::detail_from(response)
    }

    async fn diff(&self, references: &[String], top: usize) -> Result<DumpDiff, QueryError> {
        let response = self
            .client
            .clone()
            .diff_dumps(pb::DiffDumpsRequest {
                dump_ids: references.to_vec(),
                top: u32::try_from(top).unwrap_or(u32::MAX),
            })
            .await?
            .into_inner();
        convert::diff_from(response)
    }

    async fn leak_report(
        &self,
        scope: &DumpQuery,
        top: usize,
        rank: LeakRank,
    ) -> Result<LeakReport, QueryError> {
        let response = self
            .client
            .clone()
            .leak_report(pb::LeakReportRequest {
                scope: Some(convert::selector_to(scope)),
                top: u32::try_from(top).unwrap_or(u32::MAX),
                rank: convert::leak_rank_to(rank) as i32,
            })
            .await?
            .into_inner();
        convert::leak_report_from(response)
    }

    async fn compare(
        &self,
        a: &DumpQuery,
        b: &DumpQuery,
        top: usize,
    ) -> Result<GroupComparison, QueryError> {
        let response = self
            .client
            .clone()
            .compare_groups(pb::CompareGroupsRequest {
                a: Some(convert::selector_to(a)),
                b: Some(convert::selector_to(b)),
                top: u32::try_from(top).unwrap_or(u32::MAX),
            })
            .await?
            .into_inner();
        convert::comparison_from(response)
    }

    async fn site_timeline(
        &self,
        file: &str,
        line: u32,
        scope: &DumpQuery,
    ) -> Result<SiteTimeline, QueryError> {
        let response = self
            .client
            .clone()
            .site_timeline(pb::SiteTimelineRequest {
                file: file.to_owned(),
                line,
                scope: Some(convert::selector_to(scope)),
            })
            .await?
            .into_inner();
        Ok(convert::timeline_from(file, line, response))
    }

    async fn retainer_paths(
        &self,
        reference: &str,
        target: &PathTarget,
        max_paths: usize,
    ) -> Result<DumpRetainerPaths, QueryError> {
        let (file, line, address) = match target {
            PathTarget::Site { file, line } => (file.clone(), *line, None),
            PathTarget::Address(address) => (String::new(), 0, Some(*address)),
        };
        let response = self
            .client
            .clone()
            .retainer_paths(pb::RetainerPathsRequest {
                dump_id: reference.to_owned(),
                file,
                line,
                address,
                max_paths: u32::try_from(max_paths).unwrap_or(u32::MAX),
            })
            .await?
            .into_inner();
        convert::paths_from(response)
    }

    async fn retained(
        &self,
        reference: &str,
        by: RetainedBy,
        top: usize,
    ) -> Result<DumpRetained, QueryError> {
        let response = self
            .client
            .clone()
            .retained(pb::RetainedRequest {
                dump_id: reference.to_owned(),
                by: convert::retained_by_to(by) as i32,
                top: u32::try_from(top).unwrap_or(u32::MAX),
            })
            .await?
            .into_inner();
        convert::retained_from(by, response)
    }

    async fn dominators(
        &self,
        reference: &str,
        query: DominatorsQuery,
    ) -> Result<DumpDominators, QueryError> {
        let response = self
            .client
            .clone()
            .dominators(pb::DominatorsRequest {
                dump_id: reference.to_owned(),
                from_address: query.from_address,
                depth: query.depth,
                top: u32::try_from(query.top).unwrap_or(u32::MAX),
            })
            .await?
            .into_inner();
        convert::dominators_from(response)
    }
}
