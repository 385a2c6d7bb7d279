//! The aggregate store's one error type: variants say what the caller can do, driver errors stay
//! sources and are never matched on outside the backend that produced them.

/// A boxed error kept as the source of [`StorageError::Unavailable`] and
/// [`StorageError::Internal`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why an aggregate store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The named object does not exist: report it to the caller, do not retry.
    #[error("{0} not found")]
    NotFound(String),
    /// The request contradicts the store's current state: re-read and decide again.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The request itself is wrong (empty dump id, repeated site rows, missing index chunks, a
    /// value out of range): fix it, do not retry.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The backend cannot serve now (busy, locked, unreachable, disk full): retry later.
    #[error("store unavailable: {message}")]
    Unavailable {
        /// What was being done.
        message: String,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// A bug or corrupt data: log it once at the edge, give the client a generic message.
    #[error("internal store error: {message}")]
    Internal {
        /// What was being done.
        message: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
}

impl StorageError {
    /// Returns whether retrying the same request later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StorageError::Unavailable { .. })
    }

    /// Returns an [`StorageError::Internal`] for a broken invariant that has no source error.
    pub(crate) fn internal_message(message: impl Into<String>) -> StorageError {
        StorageError::Internal {
            message: message.into(),
            source: None,
        }
    }
}

/// The aggregate store's result type.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_storage_error_only_unavailable_is_retryable() {
        let unavailable = StorageError::Unavailable {
            message: "opening the store".to_owned(),
            source: "busy".into(),
        };
        assert!(unavailable.is_retryable());
        assert!(!StorageError::NotFound("dump d-00".to_owned()).is_retryable());
        assert!(!StorageError::internal_message("broken").is_retryable());
    }

    #[test]
    fn test_storage_error_messages_name_the_object() {
        assert_eq!(
            StorageError::NotFound("aggregates of dump d-0123".to_owned()).to_string(),
            "aggregates of dump d-0123 not found"
        );
        assert_eq!(
            StorageError::Invalid("dump id must not be empty".to_owned()).to_string(),
            "invalid request: dump id must not be empty"
        );
    }
}
