//! heapfleet's gRPC API, generated at build time from the `.proto` files in the repository's
//! `proto/` directory. One module per versioned package.

#![allow(missing_docs, unreachable_pub, clippy::all)]

/// `heapfleet.ingest.v1`: uploading dumps and following their ingest.
pub mod ingest {
    /// Version 1 of the ingest API.
    pub mod v1 {
        tonic::include_proto!("heapfleet.ingest.v1");
    }
}

/// `heapfleet.query.v1`: what the ingested dumps reveal.
pub mod query {
    /// Version 1 of the query API.
    pub mod v1 {
        tonic::include_proto!("heapfleet.query.v1");
    }
}

/// The encoded `FileDescriptorSet` of every heapfleet package, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("heapfleet_descriptor");
