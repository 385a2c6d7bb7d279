//! The catalog's one error type: variants say what the caller can do, driver errors stay
//! sources and are never matched on outside the backend that produced them.

/// A boxed error kept as the source of [`CatalogError::Unavailable`] and
/// [`CatalogError::Internal`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a catalog operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The named object does not exist: report it to the caller, do not retry.
    #[error("{0} not found")]
    NotFound(String),
    /// The request contradicts the catalog's current state (for example a lease held by another
    /// worker): re-read and decide again.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The request itself is wrong (bad id, bad field, value out of range): fix it, do not retry.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The backend cannot serve now (busy, locked, unreachable, disk full): retry later.
    #[error("catalog unavailable: {message}")]
    Unavailable {
        /// What was being done.
        message: String,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
    /// A bug or corrupt data: log it once at the edge, give the client a generic message.
    #[error("internal catalog error: {message}")]
    Internal {
        /// What was being done.
        message: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
}

impl CatalogError {
    /// Returns whether retrying the same request later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, CatalogError::Unavailable { .. })
    }

    /// Returns an [`CatalogError::Internal`] for a broken invariant that has no source error.
    pub(crate) fn internal_message(message: impl Into<String>) -> CatalogError {
        CatalogError::Internal {
            message: message.into(),
            source: None,
        }
    }
}

/// The catalog's result type.
pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_catalog_error_only_unavailable_is_retryable() {
        let unavailable = CatalogError::Unavailable {
            message: "opening the catalog".to_owned(),
            source: "busy".into(),
        };
        assert!(unavailable.is_retryable());
        assert!(!CatalogError::NotFound("dump d-00".to_owned()).is_retryable());
        assert!(!CatalogError::internal_message("broken").is_retryable());
    }

    #[test]
    fn test_catalog_error_messages_name_the_object() {
        assert_eq!(
            CatalogError::NotFound("dump d-0123".to_owned()).to_string(),
            "dump d-0123 not found"
        );
        assert_eq!(
            CatalogError::Invalid("tenant must not be empty".to_owned()).to_string(),
            "invalid request: tenant must not be empty"
        );
    }
}
