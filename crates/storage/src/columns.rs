//! How a keyed backend spreads a site key and unsigned totals over table columns: the one
//! encoding the SQLite and CQL stores share, so both store the same rows.
//!
//! Key columns must not be null, so absent parts are encoded: `line` is -1 without a line,
//! `generation` is -1 without a generation, and `absent` has bit 1 set without a file and bit 2
//! set without a class name (`file` and `class_name` are then `""`). This keeps "no file" apart
//! from an empty file name. Unsigned 64-bit totals are stored as signed 64-bit integers; values
//! that do not fit are rejected rather than wrapped.

use heapfleet_analysis::SiteKey;
use heapfleet_dump::ObjectType;

use crate::error::{Result, StorageError};

/// `absent` bit: the site has no file.
pub(crate) const ABSENT_FILE: i64 = 1;
/// `absent` bit: the site has no class name.
pub(crate) const ABSENT_CLASS: i64 = 2;
/// `line` of a site without a line.
pub(crate) const NO_LINE: i64 = -1;
/// `generation` of a row without a generation.
pub(crate) const NO_GENERATION: i64 = -1;

/// Converts an unsigned total for a signed 64-bit column.
pub(crate) fn to_column_integer(value: u64, field: &str, dump: &str) -> Result<i64> {
    i64::try_from(value).map_err(|_| {
        StorageError::Invalid(format!(
            "{field} {value} of dump {dump} is larger than the store can hold"
        ))
    })
}

/// Converts a signed 64-bit column back to an unsigned value.
pub(crate) fn from_column_integer<T: TryFrom<i64>>(
    value: i64,
    field: &str,
    dump: &str,
) -> Result<T> {
    T::try_from(value).map_err(|_| {
        StorageError::internal_message(format!(
            "stored {field} {value} of dump {dump} is out of range"
        ))
    })
}

/// A site key as its columns store it.
pub(crate) struct SiteColumns<'a> {
    pub(crate) file: &'a str,
    pub(crate) line: i64,
    pub(crate) object_type: &'static str,
    pub(crate) class_name: &'a str,
    pub(crate) absent: i64,
}

impl<'a> SiteColumns<'a> {
    pub(crate) fn new(site: &'a SiteKey) -> SiteColumns<'a> {
        let mut absent = 0;
        if site.file.is_none() {
            absent |= ABSENT_FILE;
        }
        if site.class_name.is_none() {
            absent |= ABSENT_CLASS;
        }
        SiteColumns {
            file: site.file.as_deref().unwrap_or(""),
            line: site.line.map_or(NO_LINE, i64::from),
            object_type: site.object_type.as_str(),
            class_name: site.class_name.as_deref().unwrap_or(""),
            absent,
        }
    }
}

/// A site key as a backend returns its columns, before it is checked into a [`SiteKey`].
pub(crate) struct StoredSite {
    pub(crate) file: String,
    pub(crate) line: i64,
    pub(crate) object_type: String,
    pub(crate) class_name: String,
    pub(crate) absent: i64,
}

impl StoredSite {
    pub(crate) fn into_site_key(self, dump: &str) -> Result<SiteKey> {
        let object_type: ObjectType =
            self.object_type
                .parse()
                .map_err(|parse_error: String| StorageError::Internal {
                    message: format!("a stored site of dump {dump} has an unknown object type"),
                    source: Some(parse_error.into()),
                })?;
        Ok(SiteKey {
            file: (self.absent & ABSENT_FILE == 0).then_some(self.file),
            line: if self.line == NO_LINE {
                None
            } else {
                Some(from_column_integer(self.line, "line", dump)?)
            },
            object_type,
            class_name: (self.absent & ABSENT_CLASS == 0).then_some(self.class_name),
        })
    }
}

/// Encodes one of a dump's small parts (duplicated strings, roots, ...) as JSON text.
pub(crate) fn encode_json<T: serde::Serialize>(
    value: &T,
    part: &str,
    dump: &str,
) -> Result<String> {
    serde_json::to_string(value).map_err(|json_error| StorageError::Internal {
        message: format!("failed to encode the {part} of dump {dump}"),
        source: Some(json_error.into()),
    })
}

/// Decodes one of a dump's small parts from JSON text.
pub(crate) fn decode_json<T: serde::de::DeserializeOwned>(
    text: &str,
    part: &str,
    dump: &str,
) -> Result<T> {
    serde_json::from_str(text).map_err(|json_error| StorageError::Internal {
        message: format!("the stored {part} of dump {dump} are malformed"),
        source: Some(json_error.into()),
    })
}
