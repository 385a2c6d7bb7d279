//! Object storage for heap dumps: which store holds the dump files, chosen by URL, and the one
//! key layout every dump file is stored under.
//!
//! heapfleet defines no storage trait of its own here: callers hold an
//! `Arc<dyn object_store::ObjectStore>` and a key prefix, both returned by
//! [`open_object_store`]. The URL picks the backend:
//!
//! - a plain filesystem path or `file:///absolute/path`: [`LocalFileSystem`] rooted at that
//!   directory, created if missing (the embedded default);
//! - `s3://bucket/optional/prefix`: Amazon S3 or any S3-compatible server, with endpoint,
//!   region, credentials and plain-HTTP permission from [`S3Options`] (filled from config, or
//!   from the standard `AWS_*` variables with [`S3Options::from_env`]);
//! - `memory://` or `memory://optional/prefix`: [`InMemory`], for tests.
//!
//! # Key layout
//!
//! Every dump file lives at one key, built only by [`DumpKey::path`]:
//!
//! ```text
//! <prefix>/dumps/<tenant>/<host>/<pid>-<instance>/<dump_id>.dump[.gz]
//! ```
//!
//! `<prefix>` is the URL's prefix (empty for a local directory). Each component is checked:
//! an empty part, `.`, `..`, a `/` or `\`, or any control character (NUL included) is rejected
//! rather than escaped, so a key always reads back as the parts it was built from and no
//! component can climb out of its tenant. The pid is a number, so `<pid>-<instance>` splits at
//! its first `-`.
//!
//! Invariant: only this crate builds object keys.
//!
//! [`LocalFileSystem`]: object_store::local::LocalFileSystem
//! [`InMemory`]: object_store::memory::InMemory

#![warn(missing_docs)]

mod error;
mod layout;
mod open;

pub use error::{ObjectsError, Result};
pub use layout::{DumpCompression, DumpKey, dumps_prefix};
pub use open::{ObjectStoreUrl, S3Options, open_object_store};

/// The `object_store` crate this crate is built against, so callers use the same version.
pub use object_store;
