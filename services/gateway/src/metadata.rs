//! Checking what an upload says about its dump before any byte is stored.

use heapfleet_catalog::{NewDump, ProcessKey};
use heapfleet_proto::ingest::v1 as pb;
use tonic::Status;

use crate::Limits;

/// The longest file name accepted, in bytes (what common filesystems allow).
const MAX_FILE_NAME_BYTES: usize = 255;

/// Checks upload metadata against `limits` and returns the dump to register (without its
/// object key). INVALID_ARGUMENT names the bad field; a dump over the size limit is
/// RESOURCE_EXHAUSTED.
pub fn check_metadata(
    tenant: &str,
    metadata: &pb::DumpMetadata,
    limits: &Limits,
) -> Result<NewDump, Status> {
    let invalid = |message: String| Err(Status::invalid_argument(message));
    check_text("host", &metadata.host, limits, true)?;
    check_text("instance", &metadata.instance, limits, false)?;
    check_text("role", &metadata.role, limits, false)?;
    let file_name_limits = Limits {
        max_label_bytes: MAX_FILE_NAME_BYTES,
        ..limits.clone()
    };
    check_text("file_name", &metadata.file_name, &file_name_limits, true)?;
    if metadata.file_name.contains(['/', '\\']) || matches!(metadata.file_name.as_str(), "." | "..")
    {
        return invalid(format!(
            "file_name {:?} must be a bare file name, without directories",
            metadata.file_name
        ));
    }
    if metadata.labels.len() > limits.max_labels {
        return invalid(format!(
            "{} labels given; at most {} are allowed",
            metadata.labels.len(),
            limits.max_labels
        ));
    }
    for (key, value) in &metadata.labels {
        check_text("label key", key, limits, true)?;
        check_text(&format!("label {key:?}"), value, limits, false)?;
    }
    if metadata.sha256.len() != 64
        || !metadata
            .sha256
            .bytes()
            .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
    {
        return invalid(format!(
            "sha256 {:?} is not 64 lowercase hex digits",
            metadata.sha256
        ));
    }
    if metadata.size_bytes == 0 {
        return invalid("size_bytes is 0: an empty file is not a heap dump".to_owned());
    }
    if metadata.size_bytes > limits.max_dump_bytes {
        return Err(Status::resource_exhausted(format!(
            "the dump is {} bytes; this gateway accepts at most {} (limits.max_dump_bytes)",
            metadata.size_bytes, limits.max_dump_bytes
        )));
    }
    Ok(NewDump {
        process: ProcessKey {
            tenant: tenant.to_owned(),
            host: metadata.host.clone(),
            pid: metadata.pid,
            instance: metadata.instance.clone(),
        },
        taken_at_unix: metadata.taken_at_unix,
        jobs: metadata.jobs,
        role: (!metadata.role.is_empty()).then(|| metadata.role.clone()),
        labels: metadata.labels.clone().into_iter().collect(),
        file_name: metadata.file_name.clone(),
        size_bytes: metadata.size_bytes,
        content_sha256: metadata.sha256.clone(),
        gc_count: metadata.gc_count,
        rss_bytes: metadata.rss_bytes,
        object_key: None,
    })
}

/// Checks one text field: length, no control characters, present when `required`.
fn check_text(field: &str, value: &str, limits: &Limits, required: bool) -> Result<(), Status> {
    if required && value.is_empty() {
        return Err(Status::invalid_argument(format!(
            "{field} must not be empty"
        )));
    }
    if value.len() > limits.max_label_bytes {
        return Err(Status::invalid_argument(format!(
            "{field} is {} bytes; at most {} are allowed",
            value.len(),
            limits.max_label_bytes
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(Status::invalid_argument(format!(
            "{field} {:?} holds a control character",
            value
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata() -> pb::DumpMetadata {
        pb::DumpMetadata {
            host: "web-1".to_owned(),
            pid: 42,
            file_name: "heap-42-1700000000-10.dump".to_owned(),
            size_bytes: 100,
            sha256: "ab".repeat(32),
            ..pb::DumpMetadata::default()
        }
    }

    #[test]
    fn test_check_metadata_accepts_a_plain_upload() {
        let new_dump = check_metadata("t", &metadata(), &Limits::default()).unwrap();
        assert_eq!(new_dump.process.host, "web-1");
        assert_eq!(new_dump.role, None);
    }

    #[test]
    fn test_check_metadata_refuses_each_bad_field_by_name() {
        let limits = Limits {
            max_labels: 2,
            max_label_bytes: 16,
            max_dump_bytes: 1000,
            ..Limits::default()
        };
        type Mutation = Box<dyn Fn(&mut pb::DumpMetadata)>;
        let cases: Vec<(&str, Mutation, tonic::Code)> = vec![
            (
                "host",
                Box::new(|m| m.host.clear()),
                tonic::Code::InvalidArgument,
            ),
            (
                "file_name",
                Box::new(|m| m.file_name = "../../etc/passwd".to_owned()),
                tonic::Code::InvalidArgument,
            ),
            (
                "file_name",
                Box::new(|m| m.file_name = "..".to_owned()),
                tonic::Code::InvalidArgument,
            ),
            (
                "host",
                Box::new(|m| m.host = "a\nb".to_owned()),
                tonic::Code::InvalidArgument,
            ),
            (
                "labels",
                Box::new(|m| {
                    for key in ["a", "b", "c"] {
                        m.labels.insert(key.to_owned(), "v".to_owned());
                    }
                }),
                tonic::Code::InvalidArgument,
            ),
            (
                "label \"k\"",
                Box::new(|m| {
                    m.labels.insert("k".to_owned(), "v".repeat(17));
                }),
                tonic::Code::InvalidArgument,
            ),
            (
                "sha256",
                Box::new(|m| m.sha256 = "AB".repeat(32)),
                tonic::Code::InvalidArgument,
            ),
            (
                "size_bytes",
                Box::new(|m| m.size_bytes = 0),
                tonic::Code::InvalidArgument,
            ),
            (
                "max_dump_bytes",
                Box::new(|m| m.size_bytes = 1001),
                tonic::Code::ResourceExhausted,
            ),
        ];
        for (needle, mutate, code) in cases {
            let mut bad = metadata();
            mutate(&mut bad);
            let status = check_metadata("t", &bad, &limits).unwrap_err();
            assert_eq!(status.code(), code, "{needle}: {}", status.message());
            assert!(
                status.message().contains(needle),
                "{needle}: {}",
                status.message()
            );
        }
    }
}
