//! Streaming, tolerant parser for the JSON-lines heap dumps that Ruby's `ObjectSpace.dump_all`
//! writes (Ruby 2.3 to 3.4).
//!
//! The parser is a push parser ([`DumpParser`]): callers feed it byte chunks in any size and it
//! calls a [`Visitor`] once per line with a borrowed [`Record`]. Lines that lie wholly inside a
//! chunk are never copied; only a line that straddles two chunks is. Memory is therefore bounded by
//! the chunk size plus the longest line (itself capped by [`ParseOptions::max_line_bytes`]).
//! [`parse_reader`] and [`parse_async_reader`] wrap it for `std::io::Read` and tokio `AsyncRead`
//! sources, plain or gzip.
//!
//! Ruby really writes invalid JSON (unescaped quotes and backslashes in class names and paths, NUL
//! bytes and invalid UTF-8 in method names, truncated tails). In the default tolerant mode such a
//! line is repaired where its structure allows it, or skipped, and in both cases reported as a
//! [`BadLine`] with its line number and reason. [`ParseOptions::strict`] stops at the first one.
//!
//! This crate does no aggregation and no I/O beyond reading its input.

#![warn(missing_docs)]

mod error;
mod fast;
mod filename;
mod parser;
mod reader;
mod record;
mod scan;

pub use error::{BadLine, BadLineReason, ParseError};
pub use filename::{DumpFileName, FileNameError, parse_dump_file_name};
pub use parser::{DumpParser, ParseOptions, ParseStats, Visitor};
#[cfg(feature = "tokio")]
pub use reader::parse_async_reader;
pub use reader::{is_gzip, parse_reader};
pub use record::{
    JsonStr, ObjectFlags, ObjectRecord, ObjectType, Record, References, RootRecord, ShapeRecord,
};
pub use scan::parse_line;
