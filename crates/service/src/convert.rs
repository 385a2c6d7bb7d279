//! Conversions between the catalog's domain types and the ingest API's messages, both ways, so
//! the servers and the command-line client agree on every field.

use heapfleet_catalog::{
    DumpId, DumpRecord, DumpStatus, DumpStatusKind, OwnershipState, ProcessKey,
};
use heapfleet_proto::ingest::v1 as pb;

/// The API state of a status kind.
pub fn state_of(kind: DumpStatusKind) -> pb::DumpState {
    match kind {
        DumpStatusKind::Uploaded => pb::DumpState::Uploaded,
        DumpStatusKind::Queued => pb::DumpState::Queued,
        DumpStatusKind::Ingesting => pb::DumpState::Ingesting,
        DumpStatusKind::Ready => pb::DumpState::Ready,
        DumpStatusKind::Failed => pb::DumpState::Failed,
    }
}

/// The status kind of an API state; `None` for UNSPECIFIED.
pub fn kind_of(state: pb::DumpState) -> Option<DumpStatusKind> {
    match state {
        pb::DumpState::Unspecified => None,
        pb::DumpState::Uploaded => Some(DumpStatusKind::Uploaded),
        pb::DumpState::Queued => Some(DumpStatusKind::Queued),
        pb::DumpState::Ingesting => Some(DumpStatusKind::Ingesting),
        pb::DumpState::Ready => Some(DumpStatusKind::Ready),
        pb::DumpState::Failed => Some(DumpStatusKind::Failed),
    }
}

/// A catalog record as an API message.
pub fn dump_to_proto(record: &DumpRecord) -> pb::Dump {
    pb::Dump {
        dump_id: record.id.to_string(),
        tenant: record.process.tenant.clone(),
        host: record.process.host.clone(),
        pid: record.process.pid,
        instance: record.process.instance.clone(),
        taken_at_unix: record.taken_at_unix,
        jobs: record.jobs,
        role: record.role.clone().unwrap_or_default(),
        labels: record.labels.clone().into_iter().collect(),
        file_name: record.file_name.clone(),
        size_bytes: record.size_bytes,
        sha256: record.content_sha256.clone(),
        gc_count: record.gc_count,
        rss_bytes: record.rss_bytes,
        state: state_of(record.status.kind()) as i32,
        failure_reason: record
            .status
            .failure_reason()
            .unwrap_or_default()
            .to_owned(),
        attempts: record.attempts,
        objects: record.objects,
        bad_lines: record.bad_lines,
        registered_at_unix: record.registered_at_unix,
        ownership_state: record
            .ownership
            .as_ref()
            .map(OwnershipState::as_str)
            .unwrap_or_default()
            .to_owned(),
        ownership_reason: record
            .ownership
            .as_ref()
            .and_then(OwnershipState::reason)
            .unwrap_or_default()
            .to_owned(),
    }
}

/// An API message as a catalog record (the client side); fails on a malformed id, state or
/// ownership state. The message carries no object key nor ownership attempt count, so the
/// record has none.
pub fn dump_from_proto(dump: pb::Dump) -> anyhow::Result<DumpRecord> {
    let id: DumpId = dump.dump_id.parse()?;
    let state = pb::DumpState::try_from(dump.state)
        .map_err(|_| anyhow::anyhow!("dump {id} has unknown state {}", dump.state))?;
    let kind = kind_of(state).ok_or_else(|| anyhow::anyhow!("dump {id} has no state"))?;
    let reason_opt = (kind == DumpStatusKind::Failed).then_some(dump.failure_reason);
    let ownership = match dump.ownership_state.as_str() {
        "" => None,
        name => Some(
            OwnershipState::from_parts(name, Some(dump.ownership_reason))
                .map_err(|_| anyhow::anyhow!("dump {id} has unknown ownership state {name:?}"))?,
        ),
    };
    Ok(DumpRecord {
        id,
        process: ProcessKey {
            tenant: dump.tenant,
            host: dump.host,
            pid: dump.pid,
            instance: dump.instance,
        },
        taken_at_unix: dump.taken_at_unix,
        jobs: dump.jobs,
        role: (!dump.role.is_empty()).then_some(dump.role),
        labels: dump.labels.into_iter().collect(),
        file_name: dump.file_name,
        size_bytes: dump.size_bytes,
        content_sha256: dump.sha256,
        gc_count: dump.gc_count,
        rss_bytes: dump.rss_bytes,
        status: DumpStatus::from_parts(kind, reason_opt),
        attempts: dump.attempts,
        objects: dump.objects,
        bad_lines: dump.bad_lines,
        registered_at_unix: dump.registered_at_unix,
        object_key: None,
        ownership,
        ownership_attempts: 0,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn test_dump_round_trips_through_the_api_message() {
        let record = DumpRecord {
            id: "d-0123456789abcdef".parse().unwrap(),
            process: ProcessKey {
                tenant: "acme".to_owned(),
                host: "web-1".to_owned(),
                pid: 42,
                instance: "boot".to_owned(),
            },
            taken_at_unix: 1_700_000_000,
            jobs: Some(7),
            role: Some("sidekiq".to_owned()),
            labels: BTreeMap::from([("version".to_owned(), "1.2".to_owned())]),
            file_name: "heap.dump".to_owned(),
            size_bytes: 10,
            content_sha256: "ab".repeat(32),
            gc_count: None,
            rss_bytes: Some(1 << 30),
            status: DumpStatus::Failed {
                reason: "truncated".to_owned(),
            },
            attempts: 3,
            objects: 0,
            bad_lines: 2,
            registered_at_unix: 1_700_000_100,
            object_key: None,
            ownership: None,
            ownership_attempts: 0,
        };
        let back = dump_from_proto(dump_to_proto(&record)).unwrap();
        assert_eq!(back, record);
        for ownership in [
            OwnershipState::Queued,
            OwnershipState::Running,
            OwnershipState::Ready,
            OwnershipState::Skipped {
                reason: "too many objects".to_owned(),
            },
            OwnershipState::Failed {
                reason: "object gone".to_owned(),
            },
        ] {
            let with_pass = DumpRecord {
                status: DumpStatus::Ready,
                ownership: Some(ownership),
                ..record.clone()
            };
            let message = dump_to_proto(&with_pass);
            assert_eq!(
                message.ownership_state,
                with_pass.ownership.as_ref().unwrap().as_str()
            );
            assert_eq!(dump_from_proto(message).unwrap(), with_pass);
        }
        let mut unknown = dump_to_proto(&record);
        unknown.ownership_state = "dominating".to_owned();
        assert!(dump_from_proto(unknown).is_err());
    }
}
