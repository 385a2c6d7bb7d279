//! Errors of the parser: a bad line (reported, usually not fatal) and a fatal parse error.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// Why a line is bad.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum BadLineReason {
    /// A `"` inside a string value that Ruby did not escape; repaired, the line was used.
    #[error("unescaped quote inside a string value (repaired)")]
    UnescapedQuote,
    /// A `\` that does not start a JSON escape; repaired, the line was used.
    #[error("invalid backslash escape inside a string value (repaired)")]
    InvalidEscape,
    /// A raw NUL byte; the line was used.
    #[error("raw NUL byte in the line (repaired)")]
    NulByte,
    /// A string field that is not valid UTF-8; decoded lossily, the line was used.
    #[error("invalid UTF-8 in field {0} (repaired)")]
    InvalidUtf8(Cow<'static, str>),
    /// The line is not a JSON object this parser can read; skipped.
    #[error("malformed JSON at byte {offset}: {expected}")]
    Malformed {
        /// Byte offset within the line.
        offset: usize,
        /// What the parser expected there.
        expected: Cow<'static, str>,
    },
    /// A field had a value of the wrong kind (for example a non-hex address); skipped.
    #[error("field {field} has an invalid value")]
    InvalidField {
        /// The field's key.
        field: Cow<'static, str>,
    },
    /// The line is an object without an address; skipped.
    #[error("object line has no address")]
    MissingAddress,
    /// The line is longer than the configured maximum; skipped.
    #[error("line longer than {limit} bytes")]
    TooLong {
        /// The limit in bytes.
        limit: usize,
    },
    /// The dump ends in the middle of a line; skipped.
    #[error("dump ends in the middle of a line (truncated)")]
    Truncated,
    /// The line is empty or only white space; skipped.
    #[error("blank line")]
    Blank,
    /// Strict mode: the line is not valid JSON.
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
}

impl BadLineReason {
    /// Returns whether the line was still used (repaired) rather than skipped.
    pub fn is_repaired(&self) -> bool {
        matches!(
            self,
            BadLineReason::UnescapedQuote
                | BadLineReason::InvalidEscape
                | BadLineReason::NulByte
                | BadLineReason::InvalidUtf8(_)
        )
    }
}

/// A bad line: where it is and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("line {line_number}: {reason}")]
pub struct BadLine {
    /// 1-based line number in the (decompressed) dump.
    pub line_number: u64,
    /// Why the line is bad.
    pub reason: BadLineReason,
}

/// A fatal error: the dump could not be parsed at all, or strict mode met a bad line.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Reading the input failed; another attempt may succeed.
    #[error("failed to read the dump after {bytes_read} bytes")]
    Io {
        /// Decompressed bytes read before the failure.
        bytes_read: u64,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The input starts like gzip but does not decode (a bad header, corrupt compressed data, a
    /// wrong checksum); the same bytes fail the same way on every attempt. A stream that just
    /// ends early is not this error but a truncated dump.
    #[error("the gzip stream is corrupt after {bytes_read} decompressed bytes")]
    CorruptGzip {
        /// Decompressed bytes read before the corruption.
        bytes_read: u64,
        /// The decoder's error.
        #[source]
        source: std::io::Error,
    },
    /// Strict mode met a bad line.
    #[error("strict mode: {0}")]
    Strict(BadLine),
    /// The decompressed dump exceeds [`crate::ParseOptions::max_dump_bytes`]: a gzip bomb, or
    /// a dump larger than the caller accepts. Parsing stops there, so neither memory nor time
    /// grows with what lies beyond the limit.
    #[error("the decompressed dump exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
}

impl ParseError {
    /// Whether parsing the same input again may succeed: only when reading it failed. A corrupt
    /// gzip stream, a strict-mode bad line and the size limit fail the same way every time.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ParseError::Io { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_only_a_failed_read_is_worth_retrying() {
        let io = || std::io::Error::other("connection reset");
        assert!(
            ParseError::Io {
                bytes_read: 10,
                source: io(),
            }
            .is_retryable()
        );
        assert!(
            !ParseError::CorruptGzip {
                bytes_read: 10,
                source: io(),
            }
            .is_retryable()
        );
        assert!(!ParseError::TooLarge { limit: 1 }.is_retryable());
    }
}
