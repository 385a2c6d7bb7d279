//! Backend errors as gRPC statuses. The code tells a client what to do: UNAVAILABLE means
//! retry later (a backend is down), INVALID_ARGUMENT and NOT_FOUND mean the request is wrong,
//! INTERNAL means a bug or corrupt data. A request's own errors (not found, invalid, conflict)
//! carry their whole chain on one line: it is about what the client sent. A backend's failure
//! (UNAVAILABLE, INTERNAL) tells the client only what failed and the trace id to look for: its
//! chain names hosts, SQL and keyspaces, so it goes to the server's log, with that trace id.

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

/// The status for a backend's failure: `summary` (what failed, nothing about where or how)
/// and the trace id for the client; the whole chain for the log, under the same trace id.
pub fn backend_failure(code: tonic::Code, summary: &str, error: &dyn std::error::Error) -> Status {
    let chain = error_chain(error);
    let trace_id = heapfleet_telemetry::propagation::trace_id(&tracing::Span::current());
    let trace = trace_id.as_deref().unwrap_or("none");
    if code == tonic::Code::Internal {
        tracing::error!(error = %chain, trace_id = trace, "{summary}");
    } else {
        tracing::warn!(error = %chain, trace_id = trace, "{summary}");
    }
    let message = match &trace_id {
        Some(id) => format!("{summary}; the server's log has the details (trace {id})"),
        None => format!("{summary}; the server's log has the details"),
    };
    Status::new(code, message)
}

/// The status for a catalog error.
pub fn from_catalog(error: &CatalogError) -> Status {
    match error {
        CatalogError::NotFound(_) => Status::not_found(error_chain(error)),
        CatalogError::Conflict(_) => Status::aborted(error_chain(error)),
        CatalogError::Invalid(_) => Status::invalid_argument(error_chain(error)),
        CatalogError::Unavailable { .. } => {
            backend_failure(tonic::Code::Unavailable, "catalog unavailable", error)
        }
        CatalogError::Internal { .. } => {
            backend_failure(tonic::Code::Internal, "internal catalog error", error)
        }
    }
}

/// The status for an aggregate-store error.
pub fn from_storage(error: &StorageError) -> Status {
    match error {
        StorageError::NotFound(_) => Status::not_found(error_chain(error)),
        StorageError::Conflict(_) => Status::aborted(error_chain(error)),
        StorageError::Invalid(_) => Status::invalid_argument(error_chain(error)),
        StorageError::Unavailable { .. } => {
            backend_failure(tonic::Code::Unavailable, "store unavailable", error)
        }
        StorageError::Internal { .. } => {
            backend_failure(tonic::Code::Internal, "internal store error", error)
        }
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
    match error {
        Error::NotFound { .. } => Status::not_found(format!("{context}: not found")),
        Error::Precondition { .. } | Error::AlreadyExists { .. } => {
            Status::failed_precondition(format!("{context}: {}", error_chain(error)))
        }
        _ => backend_failure(
            tonic::Code::Unavailable,
            &format!("{context}: object storage unavailable"),
            error,
        ),
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
    fn test_backend_failures_keep_their_details_out_of_the_status() {
        let unavailable = CatalogError::Unavailable {
            message: "failed to connect to 10.1.2.3:5432".to_owned(),
            source: Box::new(std::io::Error::other("password authentication failed")),
        };
        let internal = StorageError::Internal {
            message: "SELECT * FROM heapfleet.sites".to_owned(),
            source: Some(Box::new(std::io::Error::other("keyspace heapfleet_prod"))),
        };
        for (status, summary) in [
            (from_catalog(&unavailable), "catalog unavailable"),
            (from_storage(&internal), "internal store error"),
        ] {
            let message = status.message();
            assert!(message.starts_with(summary), "{message}");
            for secret in ["10.1.2.3", "password", "SELECT", "heapfleet_prod"] {
                assert!(!message.contains(secret), "{secret} leaked: {message}");
            }
        }
        // A request's own error keeps its detail: it is about what the client sent.
        let invalid = from_catalog(&CatalogError::Invalid("label key \"a b\"".to_owned()));
        assert!(
            invalid.message().contains("label key"),
            "{}",
            invalid.message()
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
