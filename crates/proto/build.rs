//! Compiles `proto/` with protox (a protobuf compiler in Rust, so no `protoc` is needed) and
//! generates the messages, clients and servers with tonic-prost-build. The encoded descriptor
//! set is kept in OUT_DIR for gRPC server reflection.

use std::path::PathBuf;

use prost::Message;

/// Every API file; imports resolve against the repository's `proto/` directory.
const PROTO_FILES: &[&str] = &[
    "heapfleet/ingest/v1/ingest.proto",
    "heapfleet/query/v1/query.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("../../proto");
    println!("cargo:rerun-if-changed={}", proto_root.display());
    let descriptors = protox::compile(PROTO_FILES, [&proto_root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("heapfleet_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Dump chunks as `Bytes`, handed to object storage without a copy.
        .bytes(".heapfleet")
        .compile_fds(descriptors)?;
    Ok(())
}
