//! The query layer's error: what went wrong, in terms a command or a gRPC status can use.

use heapfleet_catalog::CatalogError;
use heapfleet_storage::StorageError;

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// No such dump (or none matching a prefix).
    #[error("{0}")]
    NotFound(String),
    /// The request is wrong: an ambiguous prefix, dumps of different processes, ...
    #[error("{0}")]
    Invalid(String),
    /// The dump exists but is not ingested (yet, or it failed).
    #[error("{0}")]
    NotReady(String),
    /// A backend cannot answer now: retry.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else.
    #[error("{0}")]
    Internal(String),
}

impl From<CatalogError> for QueryError {
    fn from(error: CatalogError) -> QueryError {
        let message = heapfleet_service::status::error_chain(&error);
        match error {
            CatalogError::NotFound(_) => QueryError::NotFound(message),
            CatalogError::Invalid(_) | CatalogError::Conflict(_) => QueryError::Invalid(message),
            CatalogError::Unavailable { .. } => QueryError::Unavailable(message),
            CatalogError::Internal { .. } => QueryError::Internal(message),
        }
    }
}

impl From<StorageError> for QueryError {
    fn from(error: StorageError) -> QueryError {
        let message = heapfleet_service::status::error_chain(&error);
        match error {
            StorageError::NotFound(_) => QueryError::NotFound(message),
            StorageError::Invalid(_) | StorageError::Conflict(_) => QueryError::Invalid(message),
            StorageError::Unavailable { .. } => QueryError::Unavailable(message),
            StorageError::Internal { .. } => QueryError::Internal(message),
        }
    }
}

impl From<QueryError> for tonic::Status {
    fn from(error: QueryError) -> tonic::Status {
        match &error {
            QueryError::NotFound(message) => tonic::Status::not_found(message.clone()),
            QueryError::Invalid(message) => tonic::Status::invalid_argument(message.clone()),
            QueryError::NotReady(message) => tonic::Status::failed_precondition(message.clone()),
            // A backend's failure names hosts, queries and keys: its detail goes to the log.
            QueryError::Unavailable(_) => heapfleet_service::status::backend_failure(
                tonic::Code::Unavailable,
                "a backend is unavailable",
                &error,
            ),
            QueryError::Internal(_) => heapfleet_service::status::backend_failure(
                tonic::Code::Internal,
                "internal error",
                &error,
            ),
        }
    }
}

impl From<tonic::Status> for QueryError {
    fn from(status: tonic::Status) -> QueryError {
        let message = status.message().to_owned();
        match status.code() {
            tonic::Code::NotFound => QueryError::NotFound(message),
            tonic::Code::InvalidArgument => QueryError::Invalid(message),
            tonic::Code::FailedPrecondition => QueryError::NotReady(message),
            tonic::Code::Unavailable => {
                QueryError::Unavailable(format!("server unavailable: {message}"))
            }
            code => QueryError::Internal(format!("{code:?}: {message}")),
        }
    }
}
