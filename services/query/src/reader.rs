//! The queries, behind one trait with two implementations: [`StoreQueries`] computes answers
//! from a catalog and an aggregate store (in the query service, or in the `heapfleet` command
//! on its data directory); `crate::client::RemoteQueries` asks a query service over gRPC. The
//! command line holds a `Box<dyn Queries>` and prints the same answers either way.

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use heapfleet_analysis::{
    DumpSites, GraphBuilder, GroupSummary, LeakAccumulator, LeakOptions, LeakRank, LeakReport,
    OwnerRowsAtDump, PathTarget, ProcessDumps, ProcessOwnerRows, ProcessOwnership, apply_ownership,
    generation_detail, generation_totals, group_by_owner, growing_owners, path_matches,
    rank_suspects, rollup,
};
use heapfleet_catalog::{Catalog, DumpFilter, DumpRecord, OwnershipState, ProcessSummary};
use heapfleet_service::backends::Objects;
use heapfleet_storage::AggregateStore;

use crate::QueryError;
use crate::model::{
    DominatorsQuery, DumpDiff, DumpDominators, DumpGenerationDetail, DumpQuery, DumpRetained,
    DumpRetainerPaths, DumpRollup, DumpSummary, GroupComparison, ParseSummary, ProcessTimeline,
    RetainedBy, RollupQuery, SiteTimeline, TimelinePoint,
};

/// Everything the read commands ask.
#[async_trait]
pub trait Queries: Send + Sync {
    /// The processes that have dumps `scope` matches, with the count and time range of those
    /// dumps, by host, pid and instance.
    async fn list_processes(&self, scope: &DumpQuery) -> Result<Vec<ProcessSummary>, QueryError>;

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

    /// The leak report over the processes with ready dumps in `scope`, `top` suspects.
    async fn leak_report(
        &self,
        scope: &DumpQuery,
        top: usize,
        rank: LeakRank,
    ) -> Result<LeakReport, QueryError>;

    /// Per-site differences between the processes of two selections, `top` rows.
    async fn compare(
        &self,
        a: &DumpQuery,
        b: &DumpQuery,
        top: usize,
    ) -> Result<GroupComparison, QueryError>;

    /// A site's live objects per dump, per process in `scope`. `file` matches a site's path
    /// or a trailing part of it.
    async fn site_timeline(
        &self,
        file: &str,
        line: u32,
        scope: &DumpQuery,
    ) -> Result<SiteTimeline, QueryError>;

    /// The shortest reference chain from the GC roots to each object matching `target` in one
    /// dump, clustered by signature (up to `max_paths` clusters, every target counted), read
    /// again from the dump's file in object storage.
    async fn retainer_paths(
        &self,
        reference: &str,
        target: &PathTarget,
        max_paths: usize,
    ) -> Result<DumpRetainerPaths, QueryError>;

    /// One dump's retained sizes by site (with owners), class or type, `top` rows: the stored
    /// results of its ownership pass.
    async fn retained(
        &self,
        reference: &str,
        by: RetainedBy,
        top: usize,
    ) -> Result<DumpRetained, QueryError>;

    /// Part of one dump's dominator tree: its top from the stored results when they cover the
    /// query, else computed again from the dump's file in object storage.
    async fn dominators(
        &self,
        reference: &str,
        query: DominatorsQuery,
    ) -> Result<DumpDominators, QueryError>;
}

/// Answers queries from a catalog and an aggregate store, for one tenant.
#[derive(Debug, Clone)]
pub struct StoreQueries {
    tenant: String,
    catalog: Arc<dyn Catalog>,
    store: Arc<dyn AggregateStore>,
    objects: Option<Objects>,
}

impl StoreQueries {
    /// The same queries over `tenant`'s dumps (the query service builds one per call).
    pub fn for_tenant(&self, tenant: impl Into<String>) -> StoreQueries {
        StoreQueries {
            tenant: tenant.into(),
            ..self.clone()
        }
    }

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
            objects: None,
        }
    }

    /// Lets retainer paths read dump files from `objects` (where the gateway stores them).
    pub fn with_objects(mut self, objects: Objects) -> StoreQueries {
        self.objects = Some(objects);
        self
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

    /// The ready dumps in `scope`, grouped by process (host, pid, instance), each process's
    /// dumps oldest first.
    async fn processes_in(&self, scope: &DumpQuery) -> Result<Vec<Vec<DumpRecord>>, QueryError> {
        let query = DumpQuery {
            status: Some(heapfleet_catalog::DumpStatusKind::Ready),
            ..scope.clone()
        };
        let dumps = self.list_dumps(&query).await?;
        let mut processes: Vec<Vec<DumpRecord>> = Vec::new();
        for dump in dumps {
            match processes.last_mut() {
                Some(process) if process[0].process == dump.process => process.push(dump),
                _ => processes.push(vec![dump]),
            }
        }
        for process in &mut processes {
            process.sort_by(dump_order);
        }
        Ok(processes)
    }

    /// Reads the site rows of every dump of each process, [`PROCESS_READS_IN_FLIGHT`]
    /// processes at a time, handing each process to `visit` in order.
    ///
    /// Each read runs as its own task, so decoding a process's rows (on another core) overlaps
    /// `visit` judging the one before.
    async fn for_each_process(
        &self,
        processes: Vec<Vec<DumpRecord>>,
        mut visit: impl FnMut(ProcessDumps),
    ) -> Result<(), QueryError> {
        let store = self.store.clone();
        let mut reads = futures::stream::iter(processes.into_iter().map(|dumps| {
            let store = store.clone();
            let read = tokio::spawn(async move {
                let ids: Vec<&str> = dumps.iter().map(|dump| dump.id.as_str()).collect();
                let stats = store.site_totals_for_dumps(&ids).await?;
                let first = &dumps[0].process;
                let process = ProcessDumps {
                    host: first.host.clone(),
                    pid: first.pid,
                    instance: first.instance.clone(),
                    dumps: dumps
                        .iter()
                        .zip(stats)
                        .map(|(dump, stats)| DumpSites {
                            dump_id: dump.id.to_string(),
                            taken_at_unix: dump.taken_at_unix,
                            jobs: dump.jobs,
                            sites: stats.sites,
                        })
                        .collect(),
                };
                Ok::<_, QueryError>(process)
            });
            async move {
                read.await.map_err(|error| {
                    QueryError::Internal(format!("a process's site read failed: {error}"))
                })?
            }
        }))
        .buffered(PROCESS_READS_IN_FLIGHT);
        while let Some(process) = reads.next().await {
            visit(process?);
        }
        Ok(())
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
    async fn list_processes(&self, scope: &DumpQuery) -> Result<Vec<ProcessSummary>, QueryError> {
        if *scope == DumpQuery::default() {
            return Ok(self.catalog.list_processes(&self.tenant).await?);
        }
        let mut processes: Vec<ProcessSummary> = Vec::new();
        for dump in self.list_dumps(scope).await? {
            match processes.last_mut() {
                Some(last) if last.process == dump.process => {
                    last.dump_count += 1;
                    last.first_taken_at_unix = last.first_taken_at_unix.min(dump.taken_at_unix);
                    last.last_taken_at_unix = last.last_taken_at_unix.max(dump.taken_at_unix);
                }
                _ => processes.push(ProcessSummary {
                    process: dump.process.clone(),
                    dump_count: 1,
                    first_taken_at_unix: dump.taken_at_unix,
                    last_taken_at_unix: dump.taken_at_unix,
                }),
            }
        }
        Ok(processes)
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
        dumps.sort_by(dump_order);
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

    async fn leak_report(
        &self,
        scope: &DumpQuery,
        top: usize,
        rank: LeakRank,
    ) -> Result<LeakReport, QueryError> {
        let processes = self.processes_in(scope).await?;
        let mut accumulator = LeakAccumulator::new(LeakOptions::default());
        self.for_each_process(processes, |process| accumulator.add_process(&process))
            .await?;
        // Every suspect, ranked by score; the best of them (by score and by their objects'
        // own bytes) get their retained bytes and owners, then the report is ranked as asked.
        let mut report = accumulator.finish(usize::MAX);
        let candidates = ownership_candidates(&report.suspects, top);
        let rows = self
            .attach_ownership(&mut report.suspects, &candidates)
            .await?;
        // The containers that hold the candidates' objects and keep filling are suspects too.
        report
            .suspects
            .extend(growing_owners(&rows, &LeakOptions::default()));
        rank_suspects(&mut report.suspects, rank);
        report.suspects.truncate(top);
        group_by_owner(&mut report);
        Ok(report)
    }

    async fn compare(
        &self,
        a: &DumpQuery,
        b: &DumpQuery,
        top: usize,
    ) -> Result<GroupComparison, QueryError> {
        let mut groups = Vec::with_capacity(2);
        for scope in [a, b] {
            let processes = self.processes_in(scope).await?;
            let mut group = GroupSummary::new(LeakOptions::default());
            self.for_each_process(processes, |process| group.add_process(&process))
                .await?;
            groups.push(group);
        }
        Ok(GroupComparison {
            a_processes: groups[0].processes(),
            b_processes: groups[1].processes(),
            rows: heapfleet_analysis::compare(&groups[0], &groups[1], top),
        })
    }

    async fn site_timeline(
        &self,
        file: &str,
        line: u32,
        scope: &DumpQuery,
    ) -> Result<SiteTimeline, QueryError> {
        if file.is_empty() {
            return Err(QueryError::Invalid("the site needs a file".to_owned()));
        }
        let processes = self.processes_in(scope).await?;
        let mut timelines = Vec::new();
        self.for_each_process(processes, |process| {
            let points = process
                .dumps
                .iter()
                .map(|dump| {
                    let (count, memsize) = dump
                        .sites
                        .iter()
                        .filter(|row| {
                            row.site.line == Some(line)
                                && row
                                    .site
                                    .file
                                    .as_deref()
                                    .is_some_and(|path| path_matches(path, file))
                        })
                        .fold((0, 0), |(count, memsize), row| {
                            (count + row.totals.count, memsize + row.totals.memsize)
                        });
                    TimelinePoint {
                        dump_id: dump.dump_id.clone(),
                        taken_at_unix: dump.taken_at_unix,
                        jobs: dump.jobs,
                        count,
                        memsize,
                    }
                })
                .collect();
            timelines.push(ProcessTimeline {
                host: process.host,
                pid: process.pid,
                instance: process.instance,
                points,
            });
        })
        .await?;
        Ok(SiteTimeline {
            file: file.to_owned(),
            line,
            processes: timelines,
        })
    }
    async fn retainer_paths(
        &self,
        reference: &str,
        target: &PathTarget,
        max_paths: usize,
    ) -> Result<DumpRetainerPaths, QueryError> {
        let dump = self.resolve_ready(reference).await?;
        let reader = self.open_dump_file(&dump).await?;
        let target = target.clone();
        let paths = tokio::task::spawn_blocking(move || paths_in(reader, &target, max_paths))
            .await
            .map_err(|error| QueryError::Internal(error.to_string()))??;
        Ok(DumpRetainerPaths { dump, paths })
    }

    async fn retained(
        &self,
        reference: &str,
        by: RetainedBy,
        top: usize,
    ) -> Result<DumpRetained, QueryError> {
        let dump = self.resolve_ready(reference).await?;
        let ownership = self.stored_ownership(&dump).await?;
        Ok(DumpRetained::from_ownership(dump, ownership, by, top))
    }

    async fn dominators(
        &self,
        reference: &str,
        query: DominatorsQuery,
    ) -> Result<DumpDominators, QueryError> {
        let dump = self.resolve_ready(reference).await?;
        let defaults = heapfleet_analysis::OwnershipOptions::default();
        // The stored top of the tree answers a query from the roots that asks no deeper and
        // no wider than it was kept.
        if query.from_address.is_none()
            && query.depth <= defaults.tree_depth
            && query.top <= defaults.tree_children
            && let Ok(ownership) = self.store.get_dump_ownership(dump.id.as_str()).await
        {
            return Ok(DumpDominators {
                dump,
                reachable_objects: ownership.reachable_objects,
                reachable_bytes: ownership.reachable_bytes,
                nodes: trim_tree(ownership.tree, query.depth, query.top),
            });
        }
        let reader = self.open_dump_file(&dump).await?;
        let expected_objects = dump.objects;
        let (reachable_objects, reachable_bytes, nodes) =
            tokio::task::spawn_blocking(move || dominators_in(reader, query, expected_objects))
                .await
                .map_err(|error| QueryError::Internal(error.to_string()))??;
        Ok(DumpDominators {
            dump,
            reachable_objects,
            reachable_bytes,
            nodes,
        })
    }
}

impl StoreQueries {
    /// Reads the ownership rows of the suspects numbered in `candidates` across their growing
    /// processes' dumps, one store read per process, and attaches them (retained bytes, owners).
    /// Returns the rows read, per process, for [`growing_owners`].
    async fn attach_ownership(
        &self,
        suspects: &mut [heapfleet_analysis::LeakSuspect],
        candidates: &[usize],
    ) -> Result<Vec<ProcessOwnerRows>, QueryError> {
        // (host, pid, instance) -> the process's dumps and the candidate sites growing there.
        type ProcessKey = (String, u32, String);
        let mut per_process: std::collections::BTreeMap<
            ProcessKey,
            (
                Vec<heapfleet_analysis::EvidencePoint>,
                Vec<heapfleet_analysis::SiteKey>,
            ),
        > = Default::default();
        for &index in candidates {
            let suspect = &suspects[index];
            for evidence in &suspect.evidence {
                let entry = per_process
                    .entry((
                        evidence.host.clone(),
                        evidence.pid,
                        evidence.instance.clone(),
                    ))
                    .or_insert_with(|| (evidence.series.clone(), Vec::new()));
                entry.1.push(suspect.site.clone());
            }
        }
        let store = self.store.clone();
        let reads = per_process.into_iter().map(|(process, (dumps, sites))| {
            let store = store.clone();
            async move {
                let ids: Vec<&str> = dumps.iter().map(|point| point.dump_id.as_str()).collect();
                let rows = store.site_ownership(&ids, &sites).await?;
                Ok::<_, QueryError>((process, dumps, rows))
            }
        });
        let mut rows_by_process: std::collections::HashMap<
            ProcessKey,
            Vec<heapfleet_storage::DumpSiteOwnership>,
        > = Default::default();
        let mut owner_rows = Vec::new();
        let mut reads = futures::stream::iter(reads).buffer_unordered(PROCESS_READS_IN_FLIGHT);
        while let Some(read) = reads.next().await {
            let (process, dumps, rows) = read?;
            owner_rows.push(ProcessOwnerRows {
                host: process.0.clone(),
                pid: process.1,
                instance: process.2.clone(),
                dumps: dumps
                    .iter()
                    .zip(&rows)
                    .filter(|(_, row)| !row.sites.is_empty())
                    .map(|(point, row)| OwnerRowsAtDump {
                        dump_id: point.dump_id.clone(),
                        taken_at_unix: point.taken_at_unix,
                        jobs: point.jobs,
                        sites: row.sites.clone(),
                    })
                    .collect(),
            });
            rows_by_process.insert(process, rows);
        }
        // The same answer whatever order the reads ended in.
        owner_rows.sort_by(|left, right| {
            (&left.host, left.pid, &left.instance).cmp(&(&right.host, right.pid, &right.instance))
        });
        for &index in candidates {
            let suspect = &mut suspects[index];
            let processes: Vec<ProcessOwnership> = suspect
                .evidence
                .iter()
                .filter_map(|evidence| {
                    let rows = rows_by_process.get(&(
                        evidence.host.clone(),
                        evidence.pid,
                        evidence.instance.clone(),
                    ))?;
                    Some(ProcessOwnership {
                        host: evidence.host.clone(),
                        series: rows
                            .iter()
                            .map(|dump| {
                                dump.sites
                                    .iter()
                                    .find(|row| row.site == suspect.site)
                                    .cloned()
                            })
                            .collect(),
                    })
                })
                .collect();
            apply_ownership(suspect, &processes);
        }
        Ok(owner_rows)
    }

    /// Opens a ready dump's file in object storage for a parse on a blocking thread.
    async fn open_dump_file(
        &self,
        dump: &DumpRecord,
    ) -> Result<Box<dyn std::io::Read + Send>, QueryError> {
        let Some(key) = &dump.object_key else {
            return Err(QueryError::NotReady(format!(
                "dump {} was imported from a local file that heapfleet did not keep; \
                 pass that file with --file, or upload the dump",
                dump.id
            )));
        };
        let Some(objects) = &self.objects else {
            return Err(QueryError::NotReady(format!(
                "dump {} was uploaded, but this server reads no object storage; \
                 configure the query service's `objects`, or pass the file with --file",
                dump.id
            )));
        };
        let key = heapfleet_service::backends::ObjectPath::parse(key)
            .map_err(|error| QueryError::Internal(format!("stored key {key:?}: {error}")))?;
        objects.reader(&key).await.map_err(|error| match error {
            heapfleet_objects::object_store::Error::NotFound { .. } => QueryError::NotFound(
                format!("the file of dump {} is gone from object storage", dump.id),
            ),
            other => QueryError::Unavailable(heapfleet_service::status::error_chain(&other)),
        })
    }

    /// The dump's stored ownership results, or why there are none yet.
    async fn stored_ownership(
        &self,
        dump: &DumpRecord,
    ) -> Result<heapfleet_analysis::DumpOwnership, QueryError> {
        match self.store.get_dump_ownership(dump.id.as_str()).await {
            Ok(ownership) => Ok(ownership),
            Err(heapfleet_storage::StorageError::NotFound(_)) => {
                let state = match &dump.ownership {
                    None => "no ownership pass is queued for it (its file was not kept)".to_owned(),
                    Some(OwnershipState::Queued) => "its ownership pass is queued".to_owned(),
                    Some(OwnershipState::Running) => "its ownership pass is running".to_owned(),
                    Some(OwnershipState::Skipped { reason }) => {
                        format!("its ownership pass was skipped: {reason}")
                    }
                    Some(OwnershipState::Failed { reason }) => {
                        format!("its ownership pass failed: {reason}")
                    }
                    Some(OwnershipState::Ready) => "its ownership results are gone".to_owned(),
                };
                Err(QueryError::NotReady(format!(
                    "dump {} has no retained sizes: {state}",
                    dump.id
                )))
            }
            Err(error) => Err(error.into()),
        }
    }
}

/// The suspects worth reading ownership rows for: the best `3 x top` (at least 60) by score
/// and as many by the memory ranking on their objects' own bytes, so that the memory ranking
/// sees every suspect that can reach the top.
fn ownership_candidates(suspects: &[heapfleet_analysis::LeakSuspect], top: usize) -> Vec<usize> {
    let wanted = (top.saturating_mul(3)).max(60);
    let mut by_bytes: Vec<usize> = (0..suspects.len()).collect();
    by_bytes.sort_by(|&left, &right| {
        heapfleet_analysis::memory_score(&suspects[right])
            .total_cmp(&heapfleet_analysis::memory_score(&suspects[left]))
    });
    let mut chosen: std::collections::BTreeSet<usize> = (0..suspects.len().min(wanted)).collect();
    chosen.extend(by_bytes.into_iter().take(wanted));
    chosen.into_iter().collect()
}

/// Keeps the part of a stored tree listing within `depth` levels and the `top` largest
/// children per node (the listing is depth first, children largest first).
fn trim_tree(
    nodes: Vec<heapfleet_analysis::DominatorNode>,
    depth: u32,
    top: usize,
) -> Vec<heapfleet_analysis::DominatorNode> {
    let mut kept: Vec<heapfleet_analysis::DominatorNode> = Vec::new();
    // Listing index -> kept index, for nodes kept.
    let mut new_index: Vec<Option<u32>> = Vec::with_capacity(nodes.len());
    let mut children_kept: std::collections::HashMap<Option<u32>, usize> = Default::default();
    for mut node in nodes {
        let parent_kept = match node.parent {
            None => Some(None),
            Some(parent) => new_index[parent as usize].map(Some),
        };
        let keep = node.depth < depth
            && parent_kept.is_some_and(|parent| {
                let count = children_kept.entry(parent).or_default();
                *count += 1;
                *count <= top
            });
        if keep {
            node.parent = parent_kept.flatten();
            new_index.push(Some(kept.len() as u32));
            kept.push(node);
        } else {
            new_index.push(None);
        }
    }
    kept
}

/// Parses a dump into its object graph and lists part of its dominator tree: reachable
/// objects, their bytes, the nodes. `expected_objects` (the dump's object count, 0 when
/// unknown) sizes the graph up front.
pub fn dominators_in(
    reader: impl std::io::Read,
    query: DominatorsQuery,
    expected_objects: u64,
) -> Result<(u64, u64, Vec<heapfleet_analysis::DominatorNode>), QueryError> {
    let mut graph = heapfleet_ingest::dump_graph(
        reader,
        &heapfleet_dump::ParseOptions::default(),
        heapfleet_ingest::DEFAULT_MAX_OWNERSHIP_OBJECTS,
        expected_objects,
    )
    .map_err(|error| match error {
        heapfleet_ingest::OwnershipError::TooLarge(too_large) => {
            QueryError::Invalid(too_large.to_string())
        }
        other => QueryError::Unavailable(format!(
            "cannot read the dump again: {}",
            heapfleet_service::status::error_chain(&other)
        )),
    })?;
    let analysis = heapfleet_analysis::OwnershipAnalysis::new(&mut graph);
    let from = match query.from_address {
        None => None,
        Some(address) => Some(analysis.graph().node_at(address).ok_or_else(|| {
            QueryError::NotFound(format!("the dump holds no object at 0x{address:x}"))
        })?),
    };
    let nodes = analysis
        .subtree(from, query.depth, query.top)
        .ok_or_else(|| {
            QueryError::Invalid(format!(
                "the object at 0x{:x} is garbage: no GC root reaches it",
                query.from_address.unwrap_or_default()
            ))
        })?;
    let (reachable_bytes, reachable_objects) = analysis.retained_root();
    Ok((reachable_objects, reachable_bytes, nodes))
}

/// Parses a dump into its object graph and finds the paths, up to `max_paths` clusters.
pub fn paths_in(
    reader: impl std::io::Read,
    target: &PathTarget,
    max_paths: usize,
) -> Result<heapfleet_analysis::RetainerPaths, QueryError> {
    let mut builder = GraphBuilder::new();
    heapfleet_dump::parse_reader(
        reader,
        &heapfleet_dump::ParseOptions::default(),
        &mut builder,
    )
    .map_err(|error| {
        QueryError::Unavailable(format!(
            "cannot read the dump again: {}",
            heapfleet_service::status::error_chain(&error)
        ))
    })?;
    let graph = builder.finish();
    Ok(heapfleet_analysis::retainer_paths(
        &graph, target, max_paths,
    ))
}

/// The order of one process's dumps: by time; within one second (file names carry whole
/// seconds) by the jobs counter, which only grows; then by id.
fn dump_order(left: &DumpRecord, right: &DumpRecord) -> std::cmp::Ordering {
    (left.taken_at_unix, left.jobs, &left.id).cmp(&(right.taken_at_unix, right.jobs, &right.id))
}

/// Processes whose site rows are read at once by the fleet queries.
const PROCESS_READS_IN_FLIGHT: usize = 16;

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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use heapfleet_catalog::{DumpStatus, ProcessKey};

    use super::*;

    fn dump(id: &str, taken_at_unix: i64, jobs: Option<u64>) -> DumpRecord {
        DumpRecord {
            id: id.parse().unwrap(),
            process: ProcessKey {
                tenant: "t".to_owned(),
                host: "h".to_owned(),
                pid: 1,
                instance: String::new(),
            },
            taken_at_unix,
            jobs,
            role: None,
            labels: BTreeMap::new(),
            file_name: "heap.dump".to_owned(),
            size_bytes: 1,
            content_sha256: "00".repeat(32),
            gc_count: None,
            rss_bytes: None,
            status: DumpStatus::Ready,
            attempts: 1,
            objects: 1,
            bad_lines: 0,
            registered_at_unix: 0,
            object_key: None,
            ownership: None,
            ownership_attempts: 0,
        }
    }

    #[test]
    fn test_dump_order_breaks_same_second_ties_by_jobs() {
        let mut dumps = [
            dump("d-000000000000000a", 100, Some(60)),
            dump("d-000000000000000b", 100, Some(40)),
            dump("d-000000000000000c", 99, Some(80)),
        ];
        dumps.sort_by(dump_order);
        let jobs: Vec<Option<u64>> = dumps.iter().map(|dump| dump.jobs).collect();
        assert_eq!(jobs, vec![Some(80), Some(40), Some(60)]);
    }
}
