//! Backend errors as gRPC statuses. The code tells a client what to do: UNAVAILABLE means
//! retry later (a backend is down), INVALID_ARGUMENT and NOT_FOUND mean the request is wrong,
//! INTERNAL means a bug or corrupt data. The message is the whole error chain on one line.

use heapfleet_catalog::CatalogError;
use heapfleet_objects::ObjectsError;
use heapfleet_storage::StorageError;
use tonic::Status;

/// Returns an error and its sources joined by ": ".
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The status for a catalog error.
pub fn from_catalog(error: &CatalogError) -> Status {
    let message = error_chain(error);
    match error {
        CatalogError::NotFound(_) => Status::not_found(message),
        CatalogError::Conflict(_) => Status::aborted(message),
        CatalogError::Invalid(_) => Status::invalid_argument(message),
        CatalogError::Unavailable { .. } => Status::unavailable(message),
        CatalogError::Internal { .. } => Status::internal(message),
    }
}

/// The status for an aggregate-store error.
pub fn from_storage(error: &StorageError) -> Status {
    let message = error_chain(error);
    match error {
        StorageError::NotFound(_) => Status::not_found(message),
        StorageError::Conflict(_) => Status::aborted(message),
        StorageError::Invalid(_) => Status::invalid_argument(message),
        StorageError::Unavailable { .. } => Status::unavailable(message),
        StorageError::Internal { .. } => Status::internal(message),
    }
}

/// The status for an error building an object key (always the caller's input).
pub fn from_objects(error: &ObjectsError) -> Status {
    Status::invalid_argument(error_chain(error))
}

/// The status for an object-store request that failed: a missing object is NOT_FOUND, a
/// precondition is FAILED_PRECONDITION, and anything else (network, server) UNAVAILABLE,
/// since object-store errors are overwhelmingly transient.
pub fn from_object_store(context: &str, error: &heapfleet_objects::object_store::Error) -> Status {
    use heapfleet_objects::object_store::Error;
    let message = format!("{context}: {}", error_chain(error));
    match error {
        Error::NotFound { .. } => Status::not_found(message),
        Error::Precondition { .. } | Error::AlreadyExists { .. } => {
            Status::failed_precondition(message)
        }
        _ => Status::unavailable(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_catalog_errors_map_to_retryable_or_final_codes() {
        let unavailable = CatalogError::Unavailable {
            message: "catalog down".to_owned(),
            source: Box::new(std::io::Error::other("connection refused")),
        };
        assert_eq!(from_catalog(&unavailable).code(), tonic::Code::Unavailable);
        assert_eq!(
            from_catalog(&CatalogError::NotFound("d-1".to_owned())).code(),
            tonic::Code::NotFound
        );
        assert_eq!(
            from_catalog(&CatalogError::Invalid("bad".to_owned())).code(),
            tonic::Code::InvalidArgument
        );
    }

    #[test]
    fn test_error_chain_joins_sources_once() {
        let io = std::io::Error::other("disk gone");
        let wrapped = CatalogError::Unavailable {
            message: "failed to open".to_owned(),
            source: Box::new(io),
        };
        let text = error_chain(&wrapped);
        assert!(
            text.starts_with("catalog unavailable: failed to open"),
            "{text}"
        );
        assert!(text.ends_with("disk gone"), "{text}");
    }
}
