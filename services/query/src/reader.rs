//! The queries, behind one trait with two implementations: [`StoreQueries`] computes answers
//! from a catalog and an aggregate store (in the query service, or in the `heapfleet` command
//! on its data directory); `crate::client::RemoteQueries` asks a query service over gRPC. The
//! command line holds a `Box<dyn Queries>` and prints the same answers either way.

use std::sync::Arc;

use async_trait::async_trait;
use heapfleet_analysis::{generation_detail, generation_totals, rollup};
use heapfleet_catalog::{Catalog, DumpFilter, DumpRecord, ProcessSummary};
use heapfleet_storage::AggregateStore;

use crate::QueryError;
use crate::model::{
    DumpDiff, DumpGenerationDetail, DumpQuery, DumpRollup, DumpSummary, ParseSummary, RollupQuery,
};

/// Everything the read commands ask.
#[async_trait]
pub trait Queries: Send + Sync {
    /// The processes that have dumps.
    async fn list_processes(&self) -> Result<Vec<ProcessSummary>, QueryError>;

    /// The dumps `query` matches, by host, pid, instance and time.
    async fn list_dumps(&self, query: &DumpQuery) -> Result<Vec<DumpRecord>, QueryError>;

    /// One dump's overview. `reference` is an id or a unique prefix of one (`d-` optional).
    async fn dump_summary(&self, reference: &str) -> Result<DumpSummary, QueryError>;

    /// One dump rolled up.
    async fn rollup(&self, reference: &str, query: RollupQuery) -> Result<DumpRollup, QueryError>;

    /// One dump's generation drill-down.
    async fn generation_detail(
        &self,
        reference: &str,
        generations: heapfleet_analysis::GenerationFilter,
        top: usize,
    ) -> Result<DumpGenerationDetail, QueryError>;

    /// The identity-aware diff of two or more dumps of one process; `top` 0 keeps every row.
    async fn diff(&self, references: &[String], top: usize) -> Result<DumpDiff, QueryError>;
}

/// Answers queries from a catalog and an aggregate store, for one tenant.
#[derive(Debug, Clone)]
pub struct StoreQueries {
    tenant: String,
    catalog: Arc<dyn Catalog>,
    store: Arc<dyn AggregateStore>,
}

impl StoreQueries {
    /// Queries over `tenant`'s dumps.
    pub fn new(
        tenant: impl Into<String>,
        catalog: Arc<dyn Catalog>,
        store: Arc<dyn AggregateStore>,
    ) -> StoreQueries {
        StoreQueries {
            tenant: tenant.into(),
            catalog,
            store,
        }
    }

    /// The catalog read.
    pub fn catalog(&self) -> Arc<dyn Catalog> {
        self.catalog.clone()
    }

    /// The aggregate store read.
    pub fn store(&self) -> Arc<dyn AggregateStore> {
        self.store.clone()
    }

    /// The tenant whose dumps are read.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// Returns the dump whose id is `reference` or starts with it (`d-` may be left out).
    pub async fn resolve(&self, reference: &str) -> Result<DumpRecord, QueryError> {
        let wanted = if reference.starts_with("d-") {
            reference.to_owned()
        } else {
            format!("d-{reference}")
        };
        if let Ok(id) = wanted.parse() {
            return match self.catalog.get_dump(&id).await {
                Ok(dump) if dump.process.tenant == self.tenant => Ok(dump),
                Ok(_) | Err(heapfleet_catalog::CatalogError::NotFound(_)) => {
                    Err(QueryError::NotFound(format!(
                        "no dump matches {reference:?} (see `heapfleet dumps`)"
                    )))
                }
                Err(error) => Err(error.into()),
            };
        }
        let dumps = self
            .catalog
            .list_dumps(&DumpFilter::for_tenant(self.tenant.clone()))
            .await?;
        let mut matches = dumps
            .into_iter()
            .filter(|dump| dump.id.as_str().starts_with(&wanted));
        match (matches.next(), matches.next()) {
            (Some(dump), None) => Ok(dump),
            (None, _) => Err(QueryError::NotFound(format!(
                "no dump matches {reference:?} (see `heapfleet dumps`)"
            ))),
            (Some(_), Some(_)) => Err(QueryError::Invalid(format!(
                "{reference:?} matches several dumps; give more of the id"
            ))),
        }
    }

    /// Resolves a dump that must be ready to be read.
    async fn resolve_ready(&self, reference: &str) -> Result<DumpRecord, QueryError> {
        let dump = self.resolve(reference).await?;
        if dump.status != heapfleet_catalog::DumpStatus::Ready {
            let state = match dump.status.failure_reason() {
                Some(reason) => format!("failed: {reason}"),
                None => dump.status.kind().as_str().to_owned(),
            };
            return Err(QueryError::NotReady(format!(
                "dump {} is not ingested yet ({state})",
                dump.id
            )));
        }
        Ok(dump)
    }
}

#[async_trait]
impl Queries for StoreQueries {
    async fn list_processes(&self) -> Result<Vec<ProcessSummary>, QueryError> {
        Ok(self.catalog.list_processes(&self.tenant).await?)
    }

    async fn list_dumps(&self, query: &DumpQuery) -> Result<Vec<DumpRecord>, QueryError> {
        let filter = DumpFilter {
            host: query.host.clone(),
            pid: query.pid,
            role: query.role.clone(),
            labels: query.labels.clone(),
            taken_after: query.taken_after,
            taken_before: query.taken_before,
            status: query.status,
            ..DumpFilter::for_tenant(self.tenant.clone())
        };
        Ok(self.catalog.list_dumps(&filter).await?)
    }

    async fn dump_summary(&self, reference: &str) -> Result<DumpSummary, QueryError> {
        let dump = self.resolve_ready(reference).await?;
        let aggregates = self.store.get_dump_aggregates(dump.id.as_str()).await?;
        let (generations, total) = generation_totals(&aggregates.sites);
        Ok(DumpSummary {
            dump,
            generations,
            total,
            shapes: aggregates.shapes,
            roots: aggregates.roots,
            parse: ParseSummary::from(&aggregates.parse),
        })
    }

    async fn rollup(&self, reference: &str, query: RollupQuery) -> Result<DumpRollup, QueryError> {
        let dump = self.resolve_ready(reference).await?;
        let sites = self.store.get_site_stats(dump.id.as_str()).await?;
        let rows = rollup(&sites, query.by, query.generations, query.rank, query.top);
        Ok(DumpRollup { dump, rows })
    }

    async fn generation_detail(
        &self,
        reference: &str,
        generations: heapfleet_analysis::GenerationFilter,
        top: usize,
    ) -> Result<DumpGenerationDetail, QueryError> {
        let dump = self.resolve_ready(reference).await?;
        let aggregates = self.store.get_dump_aggregates(dump.id.as_str()).await?;
        let detail = generation_detail(
            &aggregates.sites,
            &aggregates.duplicated_strings,
            generations,
            top,
        );
        Ok(DumpGenerationDetail { dump, detail })
    }

    async fn diff(&self, references: &[String], top: usize) -> Result<DumpDiff, QueryError> {
        let mut dumps = Vec::with_capacity(references.len());
        for reference in references {
            dumps.push(self.resolve_ready(reference).await?);
        }
        dumps.sort_by(|left, right| {
            (left.taken_at_unix, &left.id).cmp(&(right.taken_at_unix, &right.id))
        });
        if let Some(pair) = dumps.windows(2).find(|pair| pair[0].id == pair[1].id) {
            return Err(QueryError::Invalid(format!(
                "dump {} is given twice",
                pair[0].id
            )));
        }
        if let Some(other) = dumps.iter().find(|dump| dump.process != dumps[0].process) {
            return Err(QueryError::Invalid(format!(
                "dumps {} and {} come from different processes ({} pid {} vs {} pid {}); a diff compares dumps of one process",
                dumps[0].id,
                other.id,
                dumps[0].process.host,
                dumps[0].process.pid,
                other.process.host,
                other.process.pid
            )));
        }
        // The indexes load concurrently: each is one dump's chunks from the store.
        let loads = dumps
            .iter()
            .map(|dump| self.store.load_index(dump.id.as_str()));
        let indexes = futures_join_all(loads).await?;
        let result = heapfleet_analysis::diff(&indexes)
            .map_err(|error| QueryError::Invalid(error.to_string()))?;
        let row_count = result.rows.len();
        let mut rows = result.rows;
        if top > 0 {
            rows.truncate(top);
        }
        Ok(DumpDiff {
            dumps,
            rows,
            total: result.total,
            row_count,
        })
    }
}

/// Awaits every future, failing on the first error.
async fn futures_join_all<T, F>(futures: impl IntoIterator<Item = F>) -> Result<Vec<T>, QueryError>
where
    F: std::future::Future<Output = heapfleet_storage::Result<T>>,
{
    let mut results = Vec::new();
    for result in futures::future::join_all(futures).await {
        results.push(result?);
    }
    Ok(results)
}
