//! The key layout of dump files: `<prefix>/dumps/<tenant>/<host>/<pid>-<instance>/<dump_id>.dump[.gz]`
//! (`<pid>-` when the instance is unknown).
//! The only place object keys are built; every component is validated, never trusted.

use object_store::path::Path;

use crate::{ObjectsError, Result};

/// The top-level directory of dump files under a store's prefix.
const DUMPS_DIRECTORY: &str = "dumps";

/// The longest component accepted, in bytes: keeps a whole key well under S3's 1024-byte limit.
const MAX_PART_BYTES: usize = 200;

/// How a stored dump file is compressed, which sets its suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpCompression {
    /// Plain `dump_all` output: `.dump`.
    None,
    /// Gzip: `.dump.gz`.
    Gzip,
}

impl DumpCompression {
    fn suffix(self) -> &'static str {
        match self {
            DumpCompression::None => ".dump",
            DumpCompression::Gzip => ".dump.gz",
        }
    }
}

/// Who a dump file belongs to and which dump it is: the parts of its object key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpKey<'a> {
    /// The tenant that owns the dump.
    pub tenant: &'a str,
    /// The host the Ruby process ran on.
    pub host: &'a str,
    /// The process id on that host.
    pub pid: u32,
    /// Tells apart processes that reused a pid on one host (for example a boot id or start time).
    pub instance: &'a str,
    /// The catalog's id of the dump.
    pub dump_id: &'a str,
    /// How the stored file is compressed.
    pub compression: DumpCompression,
}

impl DumpKey<'_> {
    /// Returns the key of this dump file under `prefix`:
    /// `<prefix>/dumps/<tenant>/<host>/<pid>-<instance>/<dump_id>.dump[.gz]`.
    ///
    /// Fails with [`ObjectsError::InvalidKeyPart`] when a component is empty, `.` or `..`,
    /// longer than 200 bytes, or holds `/`, `\` or a control character.
    pub fn path(&self, prefix: &Path) -> Result<Path> {
        let tenant = checked_part("tenant", self.tenant)?;
        let host = checked_part("host", self.host)?;
        // The catalog allows an unknown (empty) instance; `<pid>-` still names one directory.
        let instance = if self.instance.is_empty() {
            ""
        } else {
            checked_part("instance", self.instance)?
        };
        let dump_id = checked_part("dump id", self.dump_id)?;
        let process = format!("{}-{instance}", self.pid);
        let file = format!("{dump_id}{}", self.compression.suffix());
        // `join` percent-encodes what object_store does not allow in a part, so whatever passes
        // `checked_part` is stored exactly or encoded, never reinterpreted as structure.
        Ok(prefix
            .clone()
            .join(DUMPS_DIRECTORY)
            .join(tenant)
            .join(host)
            .join(process.as_str())
            .join(file.as_str()))
    }
}

/// Returns the prefix holding every dump file of `tenant` under `prefix`, for listing.
pub fn dumps_prefix(prefix: &Path, tenant: &str) -> Result<Path> {
    let tenant = checked_part("tenant", tenant)?;
    Ok(prefix.clone().join(DUMPS_DIRECTORY).join(tenant))
}

/// Returns `value` if it is safe as one key component, else why not.
fn checked_part<'v>(component: &'static str, value: &'v str) -> Result<&'v str> {
    let reason = if value.is_empty() {
        Some("it is empty")
    } else if value == "." || value == ".." {
        Some("it is a relative path component")
    } else if value.len() > MAX_PART_BYTES {
        Some("it is longer than 200 bytes")
    } else if value.contains(['/', '\\']) {
        Some("it holds a path separator")
    } else if value.chars().any(char::is_control) {
        Some("it holds a control character")
    } else {
        None
    };
    match reason {
        None => Ok(value),
        Some(reason) => Err(ObjectsError::InvalidKeyPart {
            component,
            value: value.escape_debug().to_string(),
            reason,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_key() -> DumpKey<'static> {
        DumpKey {
            tenant: "acme",
            host: "web-1.example.com",
            pid: 4242,
            instance: "boot-7f3a",
            dump_id: "d-0123abcd",
            compression: DumpCompression::Gzip,
        }
    }

    #[test]
    fn test_dump_key_path_follows_the_layout() {
        let prefix = Path::from("fleet/prod");
        assert_eq!(
            sample_key().path(&prefix).unwrap().as_ref(),
            "fleet/prod/dumps/acme/web-1.example.com/4242-boot-7f3a/d-0123abcd.dump.gz"
        );
        let plain = DumpKey {
            compression: DumpCompression::None,
            ..sample_key()
        };
        assert_eq!(
            plain.path(&Path::default()).unwrap().as_ref(),
            "dumps/acme/web-1.example.com/4242-boot-7f3a/d-0123abcd.dump"
        );
    }

    #[test]
    fn test_dump_key_path_sits_under_the_tenant_prefix() {
        let prefix = Path::from("p");
        let key = sample_key().path(&prefix).unwrap();
        let tenant = dumps_prefix(&prefix, "acme").unwrap();
        assert!(key.prefix_matches(&tenant));
        assert!(!key.prefix_matches(&dumps_prefix(&prefix, "acm").unwrap()));
    }

    #[test]
    fn test_dump_key_path_rejects_nasty_parts() {
        let long = "x".repeat(MAX_PART_BYTES + 1);
        let nasty: &[&str] = &[
            "",
            ".",
            "..",
            "../other",
            "a/b",
            "/abs",
            "trailing/",
            "a\\b",
            "..\\..\\etc",
            "nul\0byte",
            "\0",
            "new\nline",
            "tab\there",
            "del\u{7f}",
            "c1\u{85}control",
            &long,
        ];
        for value in nasty {
            for component in ["tenant", "host", "instance", "dump id"] {
                if component == "instance" && value.is_empty() {
                    continue; // An unknown instance is allowed: see the test below.
                }
                let mut key = sample_key();
                match component {
                    "tenant" => key.tenant = value,
                    "host" => key.host = value,
                    "instance" => key.instance = value,
                    _ => key.dump_id = value,
                }
                let error = key.path(&Path::default()).unwrap_err();
                assert!(
                    matches!(error, ObjectsError::InvalidKeyPart { component: c, .. } if c == component),
                    "{component} {value:?}: {error}"
                );
            }
            assert!(dumps_prefix(&Path::default(), value).is_err(), "{value:?}");
        }
    }

    #[test]
    fn test_dump_key_path_accepts_an_unknown_instance() {
        let key = DumpKey {
            instance: "",
            ..sample_key()
        };
        let path = key.path(&Path::default()).unwrap();
        let parts: Vec<_> = path.parts().map(|part| part.as_ref().to_owned()).collect();
        assert_eq!(parts[3], format!("{}-", key.pid));
    }

    #[test]
    fn test_dump_key_path_keeps_unusual_but_safe_parts_in_place() {
        // Dots, spaces, percent signs and non-ASCII stay inside their own component.
        for value in [
            "...",
            ".hidden",
            "a b",
            "100%",
            "日本",
            "a..b",
            "-",
            "x".repeat(200).as_str(),
        ] {
            let key = DumpKey {
                tenant: value,
                instance: value,
                ..sample_key()
            };
            let path = key.path(&Path::default()).unwrap();
            let parts: Vec<_> = path.parts().collect();
            assert_eq!(parts.len(), 5, "{value:?} -> {path}");
            assert_eq!(parts[0].as_ref(), "dumps");
            let round_trip = Path::parse(path.as_ref()).unwrap();
            assert_eq!(round_trip, path, "{value:?}");
        }
    }

    #[test]
    fn test_invalid_key_part_error_escapes_the_value() {
        let key = DumpKey {
            host: "evil\0host",
            ..sample_key()
        };
        let message = key.path(&Path::default()).unwrap_err().to_string();
        assert_eq!(
            message,
            "invalid host `evil\\0host` in an object key: it holds a control character"
        );
    }
}
