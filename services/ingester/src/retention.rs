//! Age-based retention: a background task that, every `interval`, deletes the dumps taken more
//! than `max_age` ago, each everywhere (catalog, aggregate store, object storage) through
//! `heapfleet_ingest::DumpDeleter`, and logs what it deleted. Off unless `max_age` is set.
//!
//! A dump's age is its taken time (see `Catalog::list_dumps_taken_before`). A dump that a worker
//! is ingesting under a live lease is skipped and taken by a later sweep; a backend error ends
//! the sweep, and the next one starts over, which is safe because a delete cut short is
//! finished by deleting again. Several ingesters may sweep at once: deleting a dump another
//! sweep already deleted is a no-op. The task checks for shutdown between two deletes, so it
//! stops promptly and never leaves more than one delete unfinished.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::bail;
use heapfleet_catalog::DumpId;
use heapfleet_ingest::{DeleteError, DeletedDump, DumpDeleter, error_chain};
use tokio_util::sync::CancellationToken;

/// Time between two sweeps unless `retention.interval` says otherwise.
pub const DEFAULT_RETENTION_INTERVAL: Duration = Duration::from_secs(60 * 60);

/// Dumps listed at once by a sweep: bounds its memory however many dumps have aged out.
const SWEEP_BATCH: usize = 500;

/// The retention policy, resolved and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionSettings {
    /// Dumps taken longer ago than this are deleted; `None` (the default) keeps every dump.
    pub max_age: Option<Duration>,
    /// Time between two sweeps.
    pub interval: Duration,
}

impl Default for RetentionSettings {
    fn default() -> RetentionSettings {
        RetentionSettings {
            max_age: None,
            interval: DEFAULT_RETENTION_INTERVAL,
        }
    }
}

/// The `[retention]` table of a config file.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionFile {
    /// Delete dumps taken longer ago than this (`30d`, `12h`); leave out to keep every dump.
    pub max_age: Option<String>,
    /// Time between two sweeps (`1h`, the default).
    pub interval: Option<String>,
}

impl RetentionSettings {
    /// Parses and checks the settings, failing with one line that names the bad one
    /// (`retention.max_age`, `retention.interval`).
    pub fn parse(
        max_age_opt: Option<&str>,
        interval_opt: Option<&str>,
    ) -> anyhow::Result<RetentionSettings> {
        let parse = |name: &str, text: &str| {
            parse_duration(text).map_err(|error| anyhow::anyhow!("retention.{name}: {error}"))
        };
        let max_age = max_age_opt.map(|text| parse("max_age", text)).transpose()?;
        let interval = match interval_opt {
            Some(text) => parse("interval", text)?,
            None => DEFAULT_RETENTION_INTERVAL,
        };
        let settings = RetentionSettings { max_age, interval };
        settings.validate()?;
        Ok(settings)
    }

    /// Checks the settings, failing with one line that names the bad one.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.max_age.is_some_and(|max_age| max_age.is_zero()) {
            bail!("retention.max_age must be positive (leave it out to keep every dump)");
        }
        if self.interval.is_zero() {
            bail!("retention.interval must be positive");
        }
        if self
            .max_age
            .is_some_and(|max_age| i64::try_from(max_age.as_secs()).is_err())
        {
            bail!("retention.max_age is too long");
        }
        Ok(())
    }
}

/// Parses a duration written as a whole number and a unit: `45s`, `90m`, `12h`, `30d` or `2w`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let wrong = || format!("{text:?} is not a duration such as 30d, 12h, 90m or 45s");
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|character: char| !character.is_ascii_digit())
        .ok_or_else(wrong)?;
    let (number, unit) = trimmed.split_at(digits_end);
    let count: u64 = number.parse().map_err(|_| wrong())?;
    let unit_seconds: u64 = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 60 * 60,
        "d" => 24 * 60 * 60,
        "w" => 7 * 24 * 60 * 60,
        _ => return Err(wrong()),
    };
    count
        .checked_mul(unit_seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is too long"))
}

/// What one sweep did.
#[derive(Debug, Default)]
pub struct RetentionSweep {
    /// Dumps taken before this time (Unix seconds) were due.
    pub cutoff_unix: i64,
    /// The dumps it deleted, oldest first.
    pub deleted: Vec<DeletedDump>,
    /// Due dumps it left because a worker was ingesting them; a later sweep takes them.
    pub skipped: Vec<DumpId>,
}

/// The retention task of one process.
#[derive(Debug, Clone)]
pub struct Retention {
    deleter: DumpDeleter,
    max_age: Duration,
    tenant_opt: Option<String>,
    batch: usize,
}

impl Retention {
    /// Deletes, through `deleter`, the dumps of `tenant_opt` (`None`: every tenant) taken more
    /// than `max_age` ago.
    pub fn new(deleter: DumpDeleter, max_age: Duration, tenant_opt: Option<String>) -> Retention {
        Retention {
            deleter,
            max_age,
            tenant_opt,
            batch: SWEEP_BATCH,
        }
    }

    /// Deletes every dump due at `now_unix`, stopping early (between two deletes) once `stop`
    /// is cancelled. A backend error ends the sweep: what it deleted so far stays deleted
    /// (and was logged), and the next sweep carries on.
    pub async fn sweep(
        &self,
        now_unix: i64,
        stop: &CancellationToken,
    ) -> Result<RetentionSweep, DeleteError> {
        let max_age_seconds = i64::try_from(self.max_age.as_secs()).unwrap_or(i64::MAX);
        let mut sweep = RetentionSweep {
            cutoff_unix: now_unix.saturating_sub(max_age_seconds),
            ..RetentionSweep::default()
        };
        // Skipped dumps stay due, so each listing asks for as many more: the new candidates
        // are never crowded out by dumps a worker holds, and every round either deletes or
        // skips each candidate for good, so the sweep ends.
        let mut skipped: HashSet<DumpId> = HashSet::new();
        while !stop.is_cancelled() {
            let limit = self.batch + skipped.len();
            let listed = self
                .deleter
                .catalog()
                .list_dumps_taken_before(self.tenant_opt.as_deref(), sweep.cutoff_unix, limit)
                .await?;
            let exhausted = listed.len() < limit;
            let candidates: Vec<_> = listed
                .into_iter()
                .filter(|dump| !skipped.contains(&dump.id))
                .collect();
            if candidates.is_empty() {
                break;
            }
            for dump in candidates {
                if stop.is_cancelled() {
                    break;
                }
                match self.deleter.delete(&dump.process.tenant, &dump.id).await {
                    Ok(deleted) => {
                        tracing::info!(
                            dump = %dump.id,
                            tenant = %dump.process.tenant,
                            host = %dump.process.host,
                            pid = dump.process.pid,
                            taken_at_unix = dump.taken_at_unix,
                            object = deleted.object.as_str(),
                            "retention deleted a dump"
                        );
                        sweep.deleted.push(deleted);
                    }
                    // Deleted meanwhile by a person or another sweep: nothing left to do.
                    Err(error) if error.is_not_found() => {}
                    Err(error) if error.is_being_ingested() => {
                        tracing::info!(dump = %dump.id, error = %error, "retention skipped a dump being ingested; a later sweep deletes it");
                        skipped.insert(dump.id.clone());
                        sweep.skipped.push(dump.id);
                    }
                    Err(error) => return Err(error),
                }
            }
            if exhausted {
                break;
            }
        }
        Ok(sweep)
    }

    /// Sweeps at once and then every `interval` until `stop` is cancelled; logs each sweep
    /// that did something, and each failure (the next sweep retries).
    pub async fn run(self, interval: Duration, stop: CancellationToken) {
        tracing::info!(max_age = ?self.max_age, interval = ?interval, tenant = ?self.tenant_opt, "retention started");
        while !stop.is_cancelled() {
            match self.sweep(unix_now(), &stop).await {
                Ok(sweep) if sweep.deleted.is_empty() && sweep.skipped.is_empty() => {
                    tracing::debug!(
                        cutoff_unix = sweep.cutoff_unix,
                        "retention sweep found nothing due"
                    );
                }
                Ok(sweep) => tracing::info!(
                    cutoff_unix = sweep.cutoff_unix,
                    deleted = sweep.deleted.len(),
                    skipped = sweep.skipped.len(),
                    "retention sweep finished"
                ),
                Err(error) => {
                    tracing::warn!(error = %error_chain(&error), "retention sweep failed; the next one retries");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = stop.cancelled() => {}
            }
        }
        tracing::info!("retention stopped");
    }
}

/// The system clock in Unix seconds: dumps' taken times are on the clocks of the processes
/// that wrote them.
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since_epoch| {
            i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use heapfleet_catalog::{Catalog, CatalogError, NewDump, ProcessKey, SqliteCatalog};
    use heapfleet_dump::ParseOptions;
    use heapfleet_objects::object_store::memory::InMemory;
    use heapfleet_objects::object_store::path::Path as ObjectPath;
    use heapfleet_objects::object_store::{ObjectStoreExt, PutPayload};
    use heapfleet_storage::{AggregateStore, MemoryStore};
    use sha2::Digest;

    use super::*;

    const DAY: i64 = 24 * 60 * 60;
    /// Now, as the sweeps of these tests see it.
    const NOW: i64 = 1_800_000_000;

    struct Backends {
        catalog: Arc<SqliteCatalog>,
        store: Arc<MemoryStore>,
        objects: Arc<InMemory>,
        deleter: DumpDeleter,
        _directory: tempfile::TempDir,
    }

    async fn backends() -> Backends {
        let directory = tempfile::tempdir().unwrap();
        let catalog = Arc::new(SqliteCatalog::open(directory.path()).await.unwrap());
        let store = Arc::new(MemoryStore::new());
        let objects = Arc::new(InMemory::new());
        let deleter = DumpDeleter::new(
            catalog.clone(),
            store.clone(),
            objects.clone(),
            ObjectPath::default(),
        );
        Backends {
            catalog,
            store,
            objects,
            deleter,
            _directory: directory,
        }
    }

    impl Backends {
        /// Stores a real dump of `tenant`'s process `pid` taken at `taken_at_unix` as the
        /// stack does: its file, its catalog row and its aggregates, ready.
        async fn ready_dump(&self, tenant: &str, pid: u32, taken_at_unix: i64) -> DumpId {
            let path = heapfleet_tests::fixture("dumps/small/heap-1795773583.dump");
            let bytes = std::fs::read(&path).unwrap();
            // The taken time in the content hash makes each dump of a process distinct.
            let content_sha256: String =
                sha2::Sha256::digest(format!("{tenant}/{pid}/{taken_at_unix}").as_bytes())
                    .iter()
                    .map(|byte| format!("{byte:02x}"))
                    .collect();
            let key = format!("dumps/{tenant}/web-1/{pid}-/{taken_at_unix}.dump");
            self.objects
                .put(
                    &ObjectPath::from(key.as_str()),
                    PutPayload::from(bytes.clone()),
                )
                .await
                .unwrap();
            let (record, _) = self
                .catalog
                .register_and_enqueue(NewDump {
                    process: ProcessKey {
                        tenant: tenant.to_owned(),
                        host: "web-1".to_owned(),
                        pid,
                        instance: String::new(),
                    },
                    taken_at_unix,
                    jobs: None,
                    role: None,
                    labels: BTreeMap::new(),
                    file_name: "heap.dump".to_owned(),
                    size_bytes: bytes.len() as u64,
                    content_sha256,
                    gc_count: None,
                    rss_bytes: None,
                    object_key: Some(key),
                })
                .await
                .unwrap();
            let stored = heapfleet_ingest::parse_into_store(
                std::io::Cursor::new(bytes),
                &record.id,
                self.store.clone(),
                ParseOptions::default(),
            )
            .await
            .unwrap();
            self.catalog
                .mark_ready(&record.id, stored.aggregates.parse.objects, 0)
                .await
                .unwrap();
            record.id
        }

        /// Whether the catalog row, the aggregates and the file of `id` all exist (`true`) or
        /// none does (`false`); anything in between fails the test.
        async fn exists(&self, id: &DumpId) -> bool {
            let key = format!("{}.dump", id.as_str());
            let row = match self.catalog.get_dump(id).await {
                Ok(record) => Some(record),
                Err(CatalogError::NotFound(_)) => None,
                Err(error) => panic!("{error}"),
            };
            let aggregates = self.store.get_dump_aggregates(id.as_str()).await.is_ok();
            let file = match &row {
                Some(record) => {
                    let key = ObjectPath::from(record.object_key.clone().unwrap().as_str());
                    self.objects.head(&key).await.is_ok()
                }
                None => false,
            };
            match (row.is_some(), aggregates, file) {
                (true, true, true) => true,
                (false, false, false) => false,
                partial => panic!("{key}: row, aggregates, file = {partial:?}"),
            }
        }
    }

    fn ids(sweep: &RetentionSweep) -> Vec<DumpId> {
        sweep
            .deleted
            .iter()
            .map(|deleted| deleted.dump.id.clone())
            .collect()
    }

    #[test]
    fn test_parse_duration_reads_a_number_and_a_unit() {
        assert_eq!(parse_duration("45s"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("90m"), Ok(Duration::from_secs(90 * 60)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse_duration(" 7 d "), Ok(Duration::from_secs(7 * 86_400)));
        for bad in [
            "",
            "30",
            "d",
            "30x",
            "-1d",
            "1.5h",
            "30 days",
            "99999999999999999999w",
        ] {
            let error = parse_duration(bad).unwrap_err();
            assert!(error.contains(&format!("{bad:?}")), "{bad:?}: {error}");
        }
    }

    #[test]
    fn test_retention_settings_are_off_by_default_and_name_bad_values() {
        let defaults = RetentionSettings::parse(None, None).unwrap();
        assert_eq!(defaults, RetentionSettings::default());
        assert_eq!(defaults.max_age, None);
        assert_eq!(defaults.interval, DEFAULT_RETENTION_INTERVAL);
        let set = RetentionSettings::parse(Some("30d"), Some("15m")).unwrap();
        assert_eq!(set.max_age, Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(set.interval, Duration::from_secs(15 * 60));
        for (max_age, interval, named) in [
            (Some("thirty days"), None, "retention.max_age"),
            (Some("0d"), None, "retention.max_age"),
            (Some("30d"), Some("often"), "retention.interval"),
            (None, Some("0s"), "retention.interval"),
        ] {
            let error = RetentionSettings::parse(max_age, interval).unwrap_err();
            let message = error.to_string();
            assert!(message.starts_with(named), "{message}");
            assert!(!message.contains('\n'), "one line: {message}");
        }
    }

    #[tokio::test]
    async fn test_sweep_deletes_only_dumps_older_than_max_age() {
        let backends = backends().await;
        let old_a = backends.ready_dump("acme", 1, NOW - 40 * DAY).await;
        let old_b = backends.ready_dump("acme", 2, NOW - 31 * DAY).await;
        let young = backends.ready_dump("acme", 1, NOW - 29 * DAY).await;
        let other_tenant_old = backends.ready_dump("globex", 1, NOW - 90 * DAY).await;
        let stop = CancellationToken::new();

        let acme = Retention::new(
            backends.deleter.clone(),
            Duration::from_secs(30 * 86_400),
            Some("acme".to_owned()),
        );
        let sweep = acme.sweep(NOW, &stop).await.unwrap();
        assert_eq!(sweep.cutoff_unix, NOW - 30 * DAY);
        assert_eq!(ids(&sweep), vec![old_a.clone(), old_b.clone()]);
        assert!(sweep.skipped.is_empty());
        assert!(!backends.exists(&old_a).await);
        assert!(!backends.exists(&old_b).await);
        assert!(backends.exists(&young).await);
        assert!(backends.exists(&other_tenant_old).await, "another tenant's");
        // Nothing more is due: a second sweep deletes nothing.
        assert!(acme.sweep(NOW, &stop).await.unwrap().deleted.is_empty());

        let every_tenant = Retention::new(
            backends.deleter.clone(),
            Duration::from_secs(30 * 86_400),
            None,
        );
        let sweep = every_tenant.sweep(NOW, &stop).await.unwrap();
        assert_eq!(ids(&sweep), vec![other_tenant_old.clone()]);
        assert!(!backends.exists(&other_tenant_old).await);
        assert!(backends.exists(&young).await);
    }

    #[tokio::test]
    async fn test_sweep_passes_dumps_being_ingested_and_deletes_the_rest_in_batches() {
        let backends = backends().await;
        // The two oldest are leased: with batches of two they fill the first listing.
        let leased_a = backends.ready_dump("acme", 1, NOW - 50 * DAY).await;
        let leased_b = backends.ready_dump("acme", 2, NOW - 49 * DAY).await;
        let mut due = Vec::new();
        for pid in 3..8 {
            due.push(backends.ready_dump("acme", pid, NOW - 40 * DAY).await);
        }
        due.sort_by_key(|id| id.clone());
        for id in [&leased_a, &leased_b] {
            backends
                .catalog
                .set_status(id, heapfleet_catalog::DumpStatus::Queued)
                .await
                .unwrap();
            backends
                .catalog
                .claim_job("worker-a", Duration::from_secs(600), Some("acme"))
                .await
                .unwrap()
                .expect("a queued dump");
        }
        let retention = Retention {
            batch: 2,
            ..Retention::new(
                backends.deleter.clone(),
                Duration::from_secs(30 * 86_400),
                Some("acme".to_owned()),
            )
        };
        let sweep = retention
            .sweep(NOW, &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(ids(&sweep), due);
        assert_eq!(sweep.skipped, vec![leased_a.clone(), leased_b.clone()]);
        for id in &due {
            assert!(!backends.exists(id).await);
        }
        assert!(backends.exists(&leased_a).await);
        assert!(backends.exists(&leased_b).await);
    }

    #[tokio::test]
    async fn test_sweep_stops_between_deletes_once_cancelled() {
        let backends = backends().await;
        let old = backends.ready_dump("acme", 1, NOW - 40 * DAY).await;
        let stop = CancellationToken::new();
        stop.cancel();
        let retention = Retention::new(backends.deleter.clone(), Duration::from_secs(60), None);
        let sweep = retention.sweep(NOW, &stop).await.unwrap();
        assert!(sweep.deleted.is_empty());
        assert!(backends.exists(&old).await);
    }

    #[tokio::test(start_paused = true)]
    async fn test_run_sweeps_at_start_and_every_interval_until_stopped() {
        let backends = backends().await;
        let now = unix_now();
        let first_old = backends.ready_dump("acme", 1, now - 10 * DAY).await;
        let young = backends.ready_dump("acme", 2, now).await;
        let interval = Duration::from_secs(3600);
        let stop = CancellationToken::new();
        let task = tokio::spawn(
            Retention::new(
                backends.deleter.clone(),
                Duration::from_secs(7 * 86_400),
                None,
            )
            .run(interval, stop.clone()),
        );
        let wait_until_gone = |id: DumpId| {
            let backends = &backends;
            async move {
                // Paused time: each sleep lets the task run; the bound stands in for a deadline.
                for _ in 0..1_000 {
                    if !backends.exists(&id).await {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                panic!("{id} was never deleted");
            }
        };
        // The first sweep runs at start.
        wait_until_gone(first_old).await;
        // A dump registered now is left until the next sweep, an interval later.
        let second_old = backends.ready_dump("acme", 3, now - 8 * DAY).await;
        let registered_at = tokio::time::Instant::now();
        tokio::time::sleep(interval / 2).await;
        assert!(
            backends.exists(&second_old).await,
            "no sweep before the interval"
        );
        tokio::time::sleep(interval / 2 + Duration::from_secs(1)).await;
        wait_until_gone(second_old).await;
        let waited = registered_at.elapsed();
        assert!(
            waited <= interval + Duration::from_secs(10),
            "deleted by the next sweep, not later: {waited:?}"
        );
        assert!(backends.exists(&young).await);

        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the task stops once cancelled")
            .unwrap();
    }
}
