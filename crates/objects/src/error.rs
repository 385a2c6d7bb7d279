//! The one error type of `heapfleet-objects`.

/// Returns `T` or an [`ObjectsError`].
pub type Result<T, E = ObjectsError> = std::result::Result<T, E>;

/// What can go wrong choosing a store or building a key. Errors from reads and writes come
/// straight from `object_store`, whose store the caller holds.
#[derive(Debug, thiserror::Error)]
pub enum ObjectsError {
    /// The object store URL cannot be used; `reason` names the bad part.
    #[error("invalid object store url `{url}`: {reason}")]
    InvalidUrl {
        /// The URL as given (it never holds credentials: those come from [`crate::S3Options`]).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A component of an object key is unsafe or empty.
    #[error("invalid {component} `{value}` in an object key: {reason}")]
    InvalidKeyPart {
        /// Which component: `tenant`, `host`, `instance` or `dump id`.
        component: &'static str,
        /// The value, with control characters escaped.
        value: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// The store could not be set up (a local directory that cannot be created, an S3
    /// configuration the client refuses).
    #[error("failed to open the object store at `{url}`")]
    Open {
        /// The URL as given.
        url: String,
        /// What went wrong.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}
