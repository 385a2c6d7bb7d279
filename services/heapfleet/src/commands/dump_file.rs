//! A dump's own file given on the command line (`--file`), for the drill-downs that parse a
//! dump again when heapfleet kept no copy of it: checked against the dump's stored SHA-256.

use std::path::Path;

use anyhow::{Context, bail};
use heapfleet_catalog::DumpRecord;
use heapfleet_query::Queries;

/// Resolves `reference` and opens `path`, failing unless the file's SHA-256 is the dump's.
pub(crate) async fn open_checked(
    queries: &dyn Queries,
    reference: &str,
    path: &Path,
) -> anyhow::Result<(DumpRecord, std::fs::File)> {
    let dump = queries.dump_summary(reference).await?.dump;
    let hash_path = path.to_path_buf();
    let (_, sha256) =
        tokio::task::spawn_blocking(move || heapfleet_ingest::file_size_and_sha256(&hash_path))
            .await??;
    if sha256 != dump.content_sha256 {
        bail!(
            "{} is not dump {}: its SHA-256 is {sha256}, the dump's {}",
            path.display(),
            dump.id,
            dump.content_sha256
        );
    }
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok((dump, file))
}
