//! The catalog's domain types: processes, dumps, their ids, states and filters.
//!
//! Plain data with serde derives; no backend types appear here.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{CatalogError, Result};

/// One run of a Ruby process. A pid alone is not an identity because pids are reused, so a
/// process is (host, pid, instance) within a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProcessKey {
    /// Who owns the dumps; every read is scoped to one tenant.
    pub tenant: String,
    /// The host the process ran on.
    pub host: String,
    /// The process id, 0 when unknown.
    pub pid: u32,
    /// What tells two runs with the same pid apart: the process start time or an instance id,
    /// `""` when unknown.
    pub instance: String,
}

/// A dump to register, as the upload describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewDump {
    /// The process that wrote the dump.
    pub process: ProcessKey,
    /// When the dump was taken (Unix seconds).
    pub taken_at_unix: i64,
    /// The jobs (or requests) counter at dump time, when the process keeps one.
    pub jobs: Option<u64>,
    /// The process's role, such as `sidekiq` or `web`.
    pub role: Option<String>,
    /// Free-form labels: app version, deploy, region, anything.
    pub labels: BTreeMap<String, String>,
    /// The uploaded file's name.
    pub file_name: String,
    /// Size of the uploaded file in bytes.
    pub size_bytes: u64,
    /// SHA-256 of the uploaded bytes: 64 lowercase hex digits.
    pub content_sha256: String,
    /// The process's GC count at dump time, when the upload sent it.
    pub gc_count: Option<u64>,
    /// The process's resident set size at dump time, when the upload sent it.
    pub rss_bytes: Option<u64>,
    /// Where the dump file is kept in object storage (the key under the store's root), or
    /// `None` for a dump imported from a local file that no worker will read again.
    pub object_key: Option<String>,
}

impl NewDump {
    /// Checks the fields a catalog relies on: a non-empty tenant, host and file name, non-empty
    /// label keys, no NUL character in any text (PostgreSQL cannot store one, so no backend
    /// accepts it) and a well-formed content hash.
    pub fn validate(&self) -> Result<()> {
        if self.process.tenant.is_empty() {
            return Err(CatalogError::Invalid("tenant must not be empty".to_owned()));
        }
        if self.process.host.is_empty() {
            return Err(CatalogError::Invalid("host must not be empty".to_owned()));
        }
        if self.file_name.is_empty() {
            return Err(CatalogError::Invalid(
                "file name must not be empty".to_owned(),
            ));
        }
        if self.labels.keys().any(String::is_empty) {
            return Err(CatalogError::Invalid(
                "label keys must not be empty".to_owned(),
            ));
        }
        let texts = [
            ("tenant", self.process.tenant.as_str()),
            ("host", &self.process.host),
            ("instance", &self.process.instance),
            ("role", self.role.as_deref().unwrap_or_default()),
            ("file name", &self.file_name),
            ("object key", self.object_key.as_deref().unwrap_or_default()),
        ];
        let label_texts = self
            .labels
            .iter()
            .flat_map(|(key, value)| [("label key", key.as_str()), ("label value", value)]);
        if let Some((field, _)) = texts
            .into_iter()
            .chain(label_texts)
            .find(|(_, text)| text.contains('\0'))
        {
            return Err(CatalogError::Invalid(format!(
                "{field} must not contain a NUL character"
            )));
        }
        if !is_lower_hex(&self.content_sha256, 64) {
            return Err(CatalogError::Invalid(format!(
                "content hash {:?} is not 64 lowercase hex digits",
                self.content_sha256
            )));
        }
        Ok(())
    }

    /// Checks a trace context to keep with the dump's job
    /// ([`crate::Catalog::register_and_enqueue_traced`]): no NUL character, as for every text.
    pub fn validate_trace_context(trace_context_opt: Option<&str>) -> Result<()> {
        if trace_context_opt.is_some_and(|trace_context| trace_context.contains('\0')) {
            return Err(CatalogError::Invalid(
                "trace context must not contain a NUL character".to_owned(),
            ));
        }
        Ok(())
    }

    /// Returns the id this dump gets (see [`DumpId::derive`]).
    pub fn dump_id(&self) -> DumpId {
        DumpId::derive(&self.process, &self.content_sha256)
    }
}

/// A dump's id: `d-` followed by 16 lowercase hex digits.
///
/// The id is derived, not allocated: it is the first 64 bits of a SHA-256 over the tenant, host,
/// pid, instance and content hash (each length-prefixed, so no two field lists hash alike). The
/// same bytes uploaded again from the same process therefore get the same id, which is what makes
/// registration idempotent, while the same bytes from another process or tenant get another id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DumpId(String);

/// Hex digits after the `d-` prefix.
const DUMP_ID_HEX_DIGITS: usize = 16;
/// Separates this hash's inputs from any other use of SHA-256 over the same fields.
const DUMP_ID_DOMAIN: &[u8] = b"heapfleet dump id v1";

impl DumpId {
    /// Returns the id of the dump with `content_sha256` written by `process`.
    pub fn derive(process: &ProcessKey, content_sha256: &str) -> DumpId {
        let mut hasher = Sha256::new();
        hasher.update(DUMP_ID_DOMAIN);
        let pid = process.pid.to_string();
        for field in [
            &process.tenant,
            &process.host,
            &pid,
            &process.instance,
            content_sha256,
        ] {
            hasher.update((field.len() as u64).to_be_bytes());
            hasher.update(field.as_bytes());
        }
        let digest = hasher.finalize();
        let mut id = String::with_capacity(2 + DUMP_ID_HEX_DIGITS);
        id.push_str("d-");
        for byte in &digest[..DUMP_ID_HEX_DIGITS / 2] {
            id.push(char::from(HEX_DIGITS[usize::from(byte >> 4)]));
            id.push(char::from(HEX_DIGITS[usize::from(byte & 0x0f)]));
        }
        DumpId(id)
    }

    /// Returns the id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

fn is_lower_hex(text: &str, digits: usize) -> bool {
    text.len() == digits && text.bytes().all(|byte| HEX_DIGITS.contains(&byte))
}

impl FromStr for DumpId {
    type Err = CatalogError;

    /// Parses `d-` followed by 16 lowercase hex digits.
    fn from_str(text: &str) -> Result<DumpId> {
        match text.strip_prefix("d-") {
            Some(digits) if is_lower_hex(digits, DUMP_ID_HEX_DIGITS) => Ok(DumpId(text.to_owned())),
            _ => Err(CatalogError::Invalid(format!(
                "dump id {text:?} is not d- followed by 16 lowercase hex digits"
            ))),
        }
    }
}

impl TryFrom<String> for DumpId {
    type Error = CatalogError;

    fn try_from(text: String) -> Result<DumpId> {
        text.parse()
    }
}

impl From<DumpId> for String {
    fn from(id: DumpId) -> String {
        id.0
    }
}

impl AsRef<str> for DumpId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DumpId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// Where a dump is in its life: uploaded, waiting for a worker, being parsed, queryable, or
/// given up on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DumpStatus {
    /// The file is in object storage; nothing has been asked of it.
    Uploaded,
    /// Waiting for an ingest worker.
    Queued,
    /// A worker is parsing it.
    Ingesting,
    /// Its aggregates are stored and can be queried.
    Ready,
    /// Ingest failed.
    Failed {
        /// Why, for people.
        reason: String,
    },
}

impl DumpStatus {
    /// Returns the state without its details.
    pub fn kind(&self) -> DumpStatusKind {
        match self {
            DumpStatus::Uploaded => DumpStatusKind::Uploaded,
            DumpStatus::Queued => DumpStatusKind::Queued,
            DumpStatus::Ingesting => DumpStatusKind::Ingesting,
            DumpStatus::Ready => DumpStatusKind::Ready,
            DumpStatus::Failed { .. } => DumpStatusKind::Failed,
        }
    }

    /// Returns the failure reason of a failed dump.
    pub fn failure_reason(&self) -> Option<&str> {
        match self {
            DumpStatus::Failed { reason } => Some(reason),
            _ => None,
        }
    }

    /// Rebuilds a status from its stored form: a state name and, for failures, a reason.
    pub fn from_parts(kind: DumpStatusKind, reason_opt: Option<String>) -> DumpStatus {
        match kind {
            DumpStatusKind::Uploaded => DumpStatus::Uploaded,
            DumpStatusKind::Queued => DumpStatus::Queued,
            DumpStatusKind::Ingesting => DumpStatus::Ingesting,
            DumpStatusKind::Ready => DumpStatus::Ready,
            DumpStatusKind::Failed => DumpStatus::Failed {
                reason: reason_opt.unwrap_or_default(),
            },
        }
    }
}

/// A [`DumpStatus`] without its details, as filters and storage name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DumpStatusKind {
    /// See [`DumpStatus::Uploaded`].
    Uploaded,
    /// See [`DumpStatus::Queued`].
    Queued,
    /// See [`DumpStatus::Ingesting`].
    Ingesting,
    /// See [`DumpStatus::Ready`].
    Ready,
    /// See [`DumpStatus::Failed`].
    Failed,
}

impl DumpStatusKind {
    /// Every state, in life order.
    pub const ALL: [DumpStatusKind; 5] = [
        DumpStatusKind::Uploaded,
        DumpStatusKind::Queued,
        DumpStatusKind::Ingesting,
        DumpStatusKind::Ready,
        DumpStatusKind::Failed,
    ];

    /// Returns the stored name (`"ready"`).
    pub fn as_str(self) -> &'static str {
        match self {
            DumpStatusKind::Uploaded => "uploaded",
            DumpStatusKind::Queued => "queued",
            DumpStatusKind::Ingesting => "ingesting",
            DumpStatusKind::Ready => "ready",
            DumpStatusKind::Failed => "failed",
        }
    }
}

impl fmt::Display for DumpStatusKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for DumpStatusKind {
    type Err = CatalogError;

    fn from_str(name: &str) -> Result<DumpStatusKind> {
        DumpStatusKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
            .ok_or_else(|| CatalogError::Invalid(format!("unknown dump status {name:?}")))
    }
}

/// Where a ready dump's ownership pass is: the second job on the queue, which re-reads the
/// dump file from object storage and computes its dominator tree and retained sizes.
///
/// Only a [`DumpStatus::Ready`] dump with a file in object storage has one; see
/// [`DumpRecord::ownership`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum OwnershipState {
    /// Waiting for a worker.
    Queued,
    /// A worker holds the pass under a lease.
    Running,
    /// The pass is done and its results are stored.
    Ready,
    /// The worker decided the pass is not worth running (or cannot run) for this dump.
    Skipped {
        /// Why, for people.
        reason: String,
    },
    /// The pass failed on every attempt it was allowed.
    Failed {
        /// Why, for people.
        reason: String,
    },
}

impl OwnershipState {
    /// Returns the stored name (`"running"`), which is also the API's.
    pub fn as_str(&self) -> &'static str {
        match self {
            OwnershipState::Queued => "queued",
            OwnershipState::Running => "running",
            OwnershipState::Ready => "ready",
            OwnershipState::Skipped { .. } => "skipped",
            OwnershipState::Failed { .. } => "failed",
        }
    }

    /// Returns the reason of a skipped or failed pass.
    pub fn reason(&self) -> Option<&str> {
        match self {
            OwnershipState::Skipped { reason } | OwnershipState::Failed { reason } => Some(reason),
            _ => None,
        }
    }

    /// Rebuilds a state from its stored form: a name ([`OwnershipState::as_str`]) and, for a
    /// skipped or failed pass, a reason. `Invalid` for an unknown name.
    pub fn from_parts(name: &str, reason_opt: Option<String>) -> Result<OwnershipState> {
        Ok(match name {
            "queued" => OwnershipState::Queued,
            "running" => OwnershipState::Running,
            "ready" => OwnershipState::Ready,
            "skipped" => OwnershipState::Skipped {
                reason: reason_opt.unwrap_or_default(),
            },
            "failed" => OwnershipState::Failed {
                reason: reason_opt.unwrap_or_default(),
            },
            _ => {
                return Err(CatalogError::Invalid(format!(
                    "unknown ownership state {name:?}"
                )));
            }
        })
    }
}

/// How a worker ends an ownership pass it holds
/// ([`crate::Catalog::complete_ownership_job`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum OwnershipOutcome {
    /// The pass ran and its results are stored: [`OwnershipState::Ready`].
    Ready,
    /// The pass was not run, for a reason that no retry changes (the dump is too large for
    /// it, say): [`OwnershipState::Skipped`].
    Skipped {
        /// Why, for people.
        reason: String,
    },
}

/// A registered dump as the catalog keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpRecord {
    /// The dump's id.
    pub id: DumpId,
    /// The process that wrote it.
    pub process: ProcessKey,
    /// When it was taken (Unix seconds).
    pub taken_at_unix: i64,
    /// The jobs counter at dump time.
    pub jobs: Option<u64>,
    /// The process's role.
    pub role: Option<String>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// The uploaded file's name.
    pub file_name: String,
    /// Size of the uploaded file in bytes.
    pub size_bytes: u64,
    /// SHA-256 of the uploaded bytes (lowercase hex).
    pub content_sha256: String,
    /// The GC count at dump time.
    pub gc_count: Option<u64>,
    /// The resident set size at dump time.
    pub rss_bytes: Option<u64>,
    /// Where the dump file is kept in object storage, when it is.
    pub object_key: Option<String>,
    /// Where it is in its life.
    pub status: DumpStatus,
    /// How many times ingest started on it since it was last enqueued from `uploaded` or
    /// `failed` (a released job's attempt is not counted).
    pub attempts: u32,
    /// Heap objects found by the last successful ingest (0 before).
    pub objects: u64,
    /// Malformed lines found by the last successful ingest (0 before).
    pub bad_lines: u64,
    /// When the catalog first registered it (Unix seconds).
    pub registered_at_unix: i64,
    /// Where its ownership pass is, or `None` when no pass is queued: the dump is not
    /// [`DumpStatus::Ready`], or it has no file in object storage (`object_key` is `None`).
    /// Each successful ingest queues a new pass; leaving `ready` drops it.
    pub ownership: Option<OwnershipState>,
    /// How many times its ownership pass started since the pass was last queued (a released
    /// pass's attempt is not counted); 0 without a pass.
    pub ownership_attempts: u32,
}

/// Which dumps [`crate::Catalog::list_dumps`] returns: every set field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpFilter {
    /// The tenant (required: reads never cross tenants).
    pub tenant: String,
    /// Only this host.
    pub host: Option<String>,
    /// Only this pid.
    pub pid: Option<u32>,
    /// Only this process instance.
    pub instance: Option<String>,
    /// Only this role.
    pub role: Option<String>,
    /// Only dumps carrying every one of these labels with exactly these values.
    pub labels: BTreeMap<String, String>,
    /// Only dumps taken at or after this time (inclusive, Unix seconds).
    pub taken_after: Option<i64>,
    /// Only dumps taken strictly before this time (exclusive, Unix seconds).
    pub taken_before: Option<i64>,
    /// Only dumps in this state.
    pub status: Option<DumpStatusKind>,
}

impl DumpFilter {
    /// Returns a filter that matches every dump of `tenant`.
    pub fn for_tenant(tenant: impl Into<String>) -> DumpFilter {
        DumpFilter {
            tenant: tenant.into(),
            ..DumpFilter::default()
        }
    }

    /// Returns whether `record` passes this filter: the reference semantics every backend's
    /// query must agree with.
    pub fn matches(&self, record: &DumpRecord) -> bool {
        record.process.tenant == self.tenant
            && self
                .host
                .as_ref()
                .is_none_or(|host| *host == record.process.host)
            && self.pid.is_none_or(|pid| pid == record.process.pid)
            && self
                .instance
                .as_ref()
                .is_none_or(|instance| *instance == record.process.instance)
            && self
                .role
                .as_ref()
                .is_none_or(|role| record.role.as_ref() == Some(role))
            && self
                .labels
                .iter()
                .all(|(key, value)| record.labels.get(key) == Some(value))
            && self
                .taken_after
                .is_none_or(|after| record.taken_at_unix >= after)
            && self
                .taken_before
                .is_none_or(|before| record.taken_at_unix < before)
            && self
                .status
                .is_none_or(|status| record.status.kind() == status)
    }
}

/// A job a worker claimed: one dump, leased to one worker until the lease expires.
///
/// An ingest job is the dump's row in [`DumpStatus::Ingesting`], an ownership pass the row of
/// a ready dump in [`OwnershipState::Running`]; each job's lease lives beside it. The worker
/// keeps the job by renewing the lease before it expires and ends it by completing, failing or
/// releasing it (see [`crate::Catalog::claim_job`] and
/// [`crate::Catalog::claim_ownership_job`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// The dump, as it stands after the claim (status ingesting for an ingest job, ownership
    /// running for an ownership pass).
    pub dump: DumpRecord,
    /// The worker holding the lease.
    pub worker: String,
    /// When the lease expires (Unix milliseconds, by the catalog's clock).
    pub lease_expires_at_unix_ms: i64,
    /// Which attempt this is: the dump's attempt count after the claim, from 1 (for an
    /// ownership pass, its ownership attempt count).
    pub attempt: u32,
    /// Whether the claim took the job over from a worker whose lease had expired (a crashed or
    /// stalled worker), rather than from the queue.
    pub after_expired_lease: bool,
    /// The trace context of the upload that queued the dump
    /// ([`crate::Catalog::register_and_enqueue_traced`]), for the ingest span's link.
    pub trace_context: Option<String>,
}

/// The job queue's backlog at one moment, for the queue gauges: a cheap read of the queued
/// and leased dumps only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStats {
    /// Dumps waiting for a worker ([`DumpStatus::Queued`]).
    pub queued: u64,
    /// Dumps a worker holds ([`DumpStatus::Ingesting`]), live or expired lease alike.
    pub ingesting: u64,
    /// When the longest-waiting queued dump was registered (Unix seconds); `None` when nothing
    /// is queued.
    pub oldest_queued_registered_at_unix: Option<i64>,
    /// Ownership passes waiting for a worker ([`OwnershipState::Queued`]).
    pub ownership_queued: u64,
    /// Ownership passes a worker holds ([`OwnershipState::Running`]), live or expired lease
    /// alike.
    pub ownership_running: u64,
}

/// A process and how many dumps the catalog holds for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessSummary {
    /// The process.
    pub process: ProcessKey,
    /// Its registered dumps, in any state.
    pub dump_count: u64,
    /// When its first dump was taken (Unix seconds).
    pub first_taken_at_unix: i64,
    /// When its last dump was taken (Unix seconds).
    pub last_taken_at_unix: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(tenant: &str, pid: u32) -> ProcessKey {
        ProcessKey {
            tenant: tenant.to_owned(),
            host: "web-1".to_owned(),
            pid,
            instance: "1700000000".to_owned(),
        }
    }

    const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn test_dump_id_derive_is_deterministic_and_scoped() {
        let id = DumpId::derive(&process("acme", 42), SHA);
        assert_eq!(id, DumpId::derive(&process("acme", 42), SHA));
        assert_ne!(id, DumpId::derive(&process("acme", 43), SHA));
        assert_ne!(id, DumpId::derive(&process("other", 42), SHA));
        assert_eq!(id.as_str().len(), 18);
        assert_eq!(id.as_str().parse::<DumpId>().unwrap(), id);
    }

    #[test]
    fn test_dump_id_derive_frames_fields() {
        // Without length prefixes these two would hash the same concatenation.
        let left = ProcessKey {
            tenant: "ab".to_owned(),
            host: "c".to_owned(),
            pid: 0,
            instance: String::new(),
        };
        let right = ProcessKey {
            tenant: "a".to_owned(),
            host: "bc".to_owned(),
            pid: 0,
            instance: String::new(),
        };
        assert_ne!(DumpId::derive(&left, SHA), DumpId::derive(&right, SHA));
    }

    #[test]
    fn test_dump_id_parse_rejects_malformed_ids() {
        for text in [
            "",
            "d-",
            "d-0123",
            "x-0123456789abcdef",
            "d-0123456789ABCDEF",
            "d-0123456789abcdef0",
        ] {
            assert!(
                matches!(text.parse::<DumpId>(), Err(CatalogError::Invalid(_))),
                "{text:?}"
            );
        }
        assert!(serde_json::from_str::<DumpId>("\"nope\"").is_err());
        let id: DumpId = serde_json::from_str("\"d-0123456789abcdef\"").unwrap();
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            "\"d-0123456789abcdef\""
        );
    }

    #[test]
    fn test_dump_status_round_trips_through_parts() {
        for status in [
            DumpStatus::Uploaded,
            DumpStatus::Queued,
            DumpStatus::Ingesting,
            DumpStatus::Ready,
            DumpStatus::Failed {
                reason: "truncated gzip".to_owned(),
            },
        ] {
            let kind: DumpStatusKind = status.kind().as_str().parse().unwrap();
            let reason_opt = status.failure_reason().map(str::to_owned);
            assert_eq!(DumpStatus::from_parts(kind, reason_opt), status);
        }
        assert_eq!(
            serde_json::to_string(&DumpStatus::Failed {
                reason: "x".to_owned()
            })
            .unwrap(),
            r#"{"state":"failed","reason":"x"}"#
        );
    }

    #[test]
    fn test_ownership_state_round_trips_through_parts_and_json() {
        for state in [
            OwnershipState::Queued,
            OwnershipState::Running,
            OwnershipState::Ready,
            OwnershipState::Skipped {
                reason: "larger than the pass's limit".to_owned(),
            },
            OwnershipState::Failed {
                reason: "object gone".to_owned(),
            },
        ] {
            let reason_opt = state.reason().map(str::to_owned);
            assert_eq!(
                OwnershipState::from_parts(state.as_str(), reason_opt).unwrap(),
                state
            );
        }
        assert!(matches!(
            OwnershipState::from_parts("ingesting", None),
            Err(CatalogError::Invalid(_))
        ));
        assert_eq!(
            serde_json::to_string(&OwnershipState::Skipped {
                reason: "x".to_owned()
            })
            .unwrap(),
            r#"{"state":"skipped","reason":"x"}"#
        );
        assert_eq!(
            serde_json::to_string(&OwnershipState::Running).unwrap(),
            r#"{"state":"running"}"#
        );
    }

    #[test]
    fn test_new_dump_validate_rejects_bad_fields() {
        let valid = NewDump {
            process: process("acme", 1),
            taken_at_unix: 1_700_000_000,
            jobs: None,
            role: None,
            labels: BTreeMap::new(),
            file_name: "heap-1.dump".to_owned(),
            size_bytes: 10,
            content_sha256: SHA.to_owned(),
            gc_count: None,
            rss_bytes: None,
            object_key: None,
        };
        valid.validate().unwrap();
        NewDump::validate_trace_context(None).unwrap();
        NewDump::validate_trace_context(Some(
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ))
        .unwrap();
        assert!(matches!(
            NewDump::validate_trace_context(Some("00-\0")),
            Err(CatalogError::Invalid(_))
        ));
        let mut upper_hash = valid.clone();
        upper_hash.content_sha256 = SHA.to_ascii_uppercase();
        let mut no_tenant = valid.clone();
        no_tenant.process.tenant.clear();
        let mut empty_label = valid.clone();
        empty_label.labels.insert(String::new(), "x".to_owned());
        let mut nul_in_host = valid.clone();
        nul_in_host.process.host.push('\0');
        let mut nul_in_label = valid.clone();
        nul_in_label
            .labels
            .insert("version".to_owned(), "v1\0".to_owned());
        for invalid in [
            upper_hash,
            no_tenant,
            empty_label,
            nul_in_host,
            nul_in_label,
        ] {
            assert!(matches!(invalid.validate(), Err(CatalogError::Invalid(_))));
        }
    }
}
