//! Checks and conversions every catalog backend shares, so that they agree on what is invalid
//! and what is corrupt: unsigned fields to and from signed 64-bit columns, a stored `dumps` row
//! checked into a [`DumpRecord`], the tenant check of reads, and the not-found, lost-lease and
//! refused-delete errors.
//!
//! Knows no backend: no driver types appear here; each backend fills a [`StoredDump`] from its
//! own row type.

use std::time::Duration;

use crate::error::{CatalogError, Result};
use crate::model::{
    DumpId, DumpRecord, DumpStatus, DumpStatusKind, OwnershipOutcome, OwnershipState, ProcessKey,
};

/// Converts an unsigned field for a signed 64-bit column; a value above `i64::MAX` is the
/// caller's mistake (`Invalid`).
pub(crate) fn to_sql_integer(value: u64, field: &str) -> Result<i64> {
    i64::try_from(value).map_err(|_| {
        CatalogError::Invalid(format!(
            "{field} {value} is larger than the catalog can store"
        ))
    })
}

/// Converts a signed 64-bit column back to an unsigned field; a value out of range is corrupt
/// data (`Internal`).
pub(crate) fn from_sql_integer<T: TryFrom<i64>>(value: i64, field: &str) -> Result<T> {
    T::try_from(value).map_err(|_| {
        CatalogError::internal_message(format!("stored {field} {value} is out of range"))
    })
}

/// A `dumps` row as a backend reads it (integers signed, labels as JSON text, the status as its
/// stored name), before it is checked into a [`DumpRecord`].
pub(crate) struct StoredDump {
    pub(crate) dump_id: String,
    pub(crate) tenant: String,
    pub(crate) host: String,
    pub(crate) pid: i64,
    pub(crate) instance: String,
    pub(crate) taken_at_unix: i64,
    pub(crate) jobs: Option<i64>,
    pub(crate) role: Option<String>,
    pub(crate) labels: String,
    pub(crate) file_name: String,
    pub(crate) size_bytes: i64,
    pub(crate) content_sha256: String,
    pub(crate) gc_count: Option<i64>,
    pub(crate) rss_bytes: Option<i64>,
    pub(crate) status: String,
    pub(crate) failure_reason: Option<String>,
    pub(crate) attempts: i64,
    pub(crate) objects: i64,
    pub(crate) bad_lines: i64,
    pub(crate) registered_at_unix: i64,
    pub(crate) object_key: Option<String>,
    pub(crate) ownership_state: Option<String>,
    pub(crate) ownership_reason: Option<String>,
    pub(crate) ownership_attempts: i64,
}

impl StoredDump {
    /// Checks the row into a record; anything that does not parse is corrupt data.
    pub(crate) fn into_record(self) -> Result<DumpRecord> {
        let id: DumpId = self.dump_id.parse().map_err(|_| {
            CatalogError::internal_message(format!(
                "stored dump id {:?} is malformed",
                self.dump_id
            ))
        })?;
        let kind: DumpStatusKind = self.status.parse().map_err(|_| {
            CatalogError::internal_message(format!(
                "dump {id} has unknown stored status {:?}",
                self.status
            ))
        })?;
        let ownership = self
            .ownership_state
            .map(|name| {
                OwnershipState::from_parts(&name, self.ownership_reason).map_err(|_| {
                    CatalogError::internal_message(format!(
                        "dump {id} has unknown stored ownership state {name:?}"
                    ))
                })
            })
            .transpose()?;
        let labels =
            serde_json::from_str(&self.labels).map_err(|json_error| CatalogError::Internal {
                message: format!("dump {id} has malformed stored labels"),
                source: Some(json_error.into()),
            })?;
        let optional = |value: Option<i64>, field: &str| {
            value
                .map(|value| from_sql_integer(value, field))
                .transpose()
        };
        Ok(DumpRecord {
            process: ProcessKey {
                tenant: self.tenant,
                host: self.host,
                pid: from_sql_integer(self.pid, "pid")?,
                instance: self.instance,
            },
            taken_at_unix: self.taken_at_unix,
            jobs: optional(self.jobs, "jobs")?,
            role: self.role,
            labels,
            file_name: self.file_name,
            size_bytes: from_sql_integer(self.size_bytes, "size")?,
            content_sha256: self.content_sha256,
            gc_count: optional(self.gc_count, "gc count")?,
            rss_bytes: optional(self.rss_bytes, "rss")?,
            status: DumpStatus::from_parts(kind, self.failure_reason),
            attempts: from_sql_integer(self.attempts, "attempts")?,
            objects: from_sql_integer(self.objects, "objects")?,
            bad_lines: from_sql_integer(self.bad_lines, "bad lines")?,
            registered_at_unix: self.registered_at_unix,
            object_key: self.object_key,
            ownership,
            ownership_attempts: from_sql_integer(self.ownership_attempts, "ownership attempts")?,
            id,
        })
    }
}

/// Fails with `Invalid` for an empty worker name or one with a NUL character (PostgreSQL
/// cannot store one, so no backend accepts it).
pub(crate) fn check_worker(worker: &str) -> Result<()> {
    if worker.is_empty() {
        return Err(CatalogError::Invalid(
            "worker name must not be empty".to_owned(),
        ));
    }
    if worker.contains('\0') {
        return Err(CatalogError::Invalid(
            "worker name must not contain a NUL character".to_owned(),
        ));
    }
    Ok(())
}

/// Fails with `Invalid` for a failure reason with a NUL character.
pub(crate) fn check_reason(reason: &str) -> Result<()> {
    if reason.contains('\0') {
        return Err(CatalogError::Invalid(
            "failure reason must not contain a NUL character".to_owned(),
        ));
    }
    Ok(())
}

/// Converts a lease to whole milliseconds; under a millisecond or beyond `i64` milliseconds is
/// `Invalid`.
pub(crate) fn lease_millis(lease: Duration) -> Result<i64> {
    match i64::try_from(lease.as_millis()) {
        Ok(millis) if millis >= 1 => Ok(millis),
        _ => Err(CatalogError::Invalid(format!(
            "lease {lease:?} is not between a millisecond and i64::MAX milliseconds"
        ))),
    }
}

/// Fails with `Invalid` for `max_attempts` 0: every job gets at least one try.
pub(crate) fn check_max_attempts(max_attempts: u32) -> Result<()> {
    if max_attempts == 0 {
        return Err(CatalogError::Invalid(
            "max attempts must be at least 1".to_owned(),
        ));
    }
    Ok(())
}

/// Returns the error for a job `worker` no longer holds.
pub(crate) fn lease_lost(id: &DumpId, worker: &str) -> CatalogError {
    CatalogError::Conflict(format!(
        "worker {worker:?} does not hold the lease on dump {id}"
    ))
}

/// Returns the error for an ownership pass `worker` no longer holds (or that no worker holds:
/// the pass is not running or the dump is not ready).
pub(crate) fn ownership_lease_lost(id: &DumpId, worker: &str) -> CatalogError {
    CatalogError::Conflict(format!(
        "worker {worker:?} does not hold the lease on the ownership pass of dump {id}"
    ))
}

/// Fails with `Invalid` for a reason with a NUL character, of an ownership pass skipped by
/// `outcome`; returns the state and reason to store.
pub(crate) fn ownership_outcome_parts(
    outcome: &OwnershipOutcome,
) -> Result<(&'static str, Option<&str>)> {
    match outcome {
        OwnershipOutcome::Ready => Ok(("ready", None)),
        OwnershipOutcome::Skipped { reason } => {
            check_reason(reason)?;
            Ok(("skipped", Some(reason)))
        }
    }
}

/// Fails with `Invalid` for an empty tenant: reads never span tenants.
pub(crate) fn check_tenant(tenant: &str) -> Result<()> {
    if tenant.is_empty() {
        return Err(CatalogError::Invalid("tenant must not be empty".to_owned()));
    }
    Ok(())
}

/// Returns the error for a dump the catalog does not hold.
pub(crate) fn dump_not_found(id: &DumpId) -> CatalogError {
    CatalogError::NotFound(format!("dump {id}"))
}

/// Returns the error for a delete refused because a worker holds a live lease on the dump:
/// `ingest_worker_opt` for its ingest, else `ownership_worker_opt` for its ownership pass.
pub(crate) fn delete_refused(
    id: &DumpId,
    ingest_worker_opt: Option<&str>,
    ownership_worker_opt: Option<&str>,
) -> CatalogError {
    CatalogError::Conflict(match (ingest_worker_opt, ownership_worker_opt) {
        (None, Some(worker)) => format!(
            "the ownership pass of dump {id} is held by worker {worker:?}; delete it once the \
             pass ends"
        ),
        (worker_opt, _) => format!(
            "dump {id} is being ingested by worker {:?}; delete it once the ingest ends",
            worker_opt.unwrap_or_default()
        ),
    })
}

/// Checks the arguments of `list_dumps_taken_before` and converts the limit for SQL.
pub(crate) fn check_retention_listing(tenant_opt: Option<&str>, limit: usize) -> Result<i64> {
    if let Some(tenant) = tenant_opt {
        check_tenant(tenant)?;
    }
    match i64::try_from(limit) {
        Ok(limit) if limit >= 1 => Ok(limit),
        _ => Err(CatalogError::Invalid(format!(
            "listing limit {limit} is not between 1 and i64::MAX"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_to_sql_integer_rejects_values_above_i64() {
        assert_eq!(to_sql_integer(5, "size").unwrap(), 5);
        assert!(matches!(
            to_sql_integer(u64::MAX, "size"),
            Err(CatalogError::Invalid(_))
        ));
        assert!(matches!(
            from_sql_integer::<u64>(-1, "size"),
            Err(CatalogError::Internal { .. })
        ));
        assert_eq!(from_sql_integer::<u32>(7, "pid").unwrap(), 7);
    }

    #[test]
    fn test_lease_millis_rejects_sub_millisecond_leases() {
        assert_eq!(lease_millis(Duration::from_secs(2)).unwrap(), 2000);
        assert_eq!(lease_millis(Duration::from_millis(1)).unwrap(), 1);
        for invalid in [Duration::ZERO, Duration::from_micros(999), Duration::MAX] {
            assert!(
                matches!(lease_millis(invalid), Err(CatalogError::Invalid(_))),
                "{invalid:?}"
            );
        }
    }

    #[test]
    fn test_check_worker_rejects_empty_and_nul_names() {
        assert!(check_worker("ingester-1").is_ok());
        assert!(matches!(check_worker(""), Err(CatalogError::Invalid(_))));
        assert!(matches!(
            check_worker("a\0b"),
            Err(CatalogError::Invalid(_))
        ));
        assert!(matches!(
            check_max_attempts(0),
            Err(CatalogError::Invalid(_))
        ));
        assert!(matches!(check_reason("x\0"), Err(CatalogError::Invalid(_))));
    }

    #[test]
    fn test_check_tenant_rejects_the_empty_tenant() {
        assert!(check_tenant("acme").is_ok());
        assert!(matches!(check_tenant(""), Err(CatalogError::Invalid(_))));
    }
}
