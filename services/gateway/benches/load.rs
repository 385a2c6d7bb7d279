//! Load benchmark: many agents uploading real dumps to one gateway process at once.
//!
//! `cargo bench -p heapfleet-gateway --bench load` starts the real `heapfleet-gateway` binary,
//! then 50 clients, each on its own connection, upload 50 different real dumps (a generated
//! Ruby dump of about 40 MB, each copy made distinct by one extra object line) at the same
//! moment. It reports the wall time, throughput, per-upload latency and the gateway's peak
//! resident memory (`VmHWM`), then checks that nothing was lost: every upload was acknowledged,
//! the catalog holds each dump once with its size and hash, and each object is in storage with
//! its size.
//!
//! Backends: PostgreSQL and the S3 server named by `HEAPFLEET_TEST_POSTGRES_URL` and
//! `HEAPFLEET_TEST_S3_*` (`scripts/test-services.sh`, `scripts/s3-server.sh`) when set, else the
//! embedded catalog and a local directory. `HEAPFLEET_LOAD_UPLOADS` and `HEAPFLEET_LOAD_DUMP_MB`
//! change the load; `HEAPFLEET_LOAD_MAX_CONCURRENT` sets the gateway's upload limit.

#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use heapfleet_catalog::{Catalog, DumpFilter, DumpStatusKind};
use heapfleet_proto::ingest::v1 as pb;

/// The gateway process, killed on drop.
struct GatewayProcess(Child);

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// Resident memory of `pid` now and at its peak, in bytes, from /proc.
fn memory_of(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line = status
            .lines()
            .find(|line| line.starts_with(name))
            .with_context(|| format!("no {name} in /proc/{pid}/status"))?;
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .context("malformed status line")?
            .parse()?;
        Ok(kib * 1024)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// Writes `count` distinct copies of `dump`: each ends with one more (valid) object line.
fn distinct_copies(dump: &Path, directory: &Path, count: usize) -> anyhow::Result<Vec<PathBuf>> {
    let bytes = std::fs::read(dump).with_context(|| format!("read {}", dump.display()))?;
    (0..count)
        .map(|copy| {
            let path = directory.join(format!("heap-{}-{copy}.dump", 1_700_000_000 + copy));
            let mut file = std::fs::File::create(&path)?;
            file.write_all(&bytes)?;
            writeln!(
                file,
                r#"{{"address":"0x7f00{copy:08x}", "type":"STRING", "class":"0x1", "bytesize":4, "value":"load", "encoding":"UTF-8", "memsize":40, "flags":{{"wb_protected":true}}}}"#
            )?;
            Ok(path)
        })
        .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let uploads: usize = env_number("HEAPFLEET_LOAD_UPLOADS", 50);
    let dump_mb: u64 = env_number("HEAPFLEET_LOAD_DUMP_MB", 40);
    let base = heapfleet_tests::generated_dump(
        "large",
        &heapfleet_tests::generated_dir().join(format!("load-{dump_mb}")),
        &["--target-mb", &dump_mb.to_string()],
    )?;
    let work = tempfile::tempdir()?;
    let files = distinct_copies(&base, work.path(), uploads)?;
    let total_bytes: u64 = files
        .iter()
        .map(|file| std::fs::metadata(file).map(|metadata| metadata.len()))
        .sum::<std::io::Result<u64>>()?;

    // The backends: real servers when the test scripts started them, else embedded ones.
    let data = work.path().join("data");
    let catalog_url =
        std::env::var("HEAPFLEET_TEST_POSTGRES_URL").unwrap_or_else(|_| data.display().to_string());
    let s3_endpoint = std::env::var("HEAPFLEET_TEST_S3_ENDPOINT").ok();
    let tenant = format!("load-{}", std::process::id());
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_heapfleet-gateway"));
    command
        .env_clear()
        .env("RUST_LOG", "warn")
        .env("HEAPFLEET_LISTEN", format!("127.0.0.1:{port}"))
        .env("HEAPFLEET_TENANT", &tenant)
        .env("HEAPFLEET_CATALOG", &catalog_url)
        .stdout(Stdio::null());
    if let Ok(limit) = std::env::var("HEAPFLEET_LOAD_MAX_CONCURRENT") {
        command.env("HEAPFLEET_MAX_CONCURRENT_CALLS", limit);
    }
    let backend = match &s3_endpoint {
        Some(endpoint) => {
            let bucket = std::env::var("HEAPFLEET_TEST_S3_BUCKET").context("S3 bucket")?;
            command
                .env("HEAPFLEET_OBJECTS", format!("s3://{bucket}/load"))
                .env("HEAPFLEET_S3_ENDPOINT", endpoint)
                .env("HEAPFLEET_S3_ALLOW_HTTP", "true")
                .env(
                    "AWS_ACCESS_KEY_ID",
                    std::env::var("HEAPFLEET_TEST_S3_ACCESS_KEY")?,
                )
                .env(
                    "AWS_SECRET_ACCESS_KEY",
                    std::env::var("HEAPFLEET_TEST_S3_SECRET_KEY")?,
                );
            "PostgreSQL-or-embedded catalog, S3 server"
        }
        None => {
            command.env("HEAPFLEET_OBJECTS", data.join("objects"));
            "local directory"
        }
    };
    let gateway = GatewayProcess(command.spawn().context("start heapfleet-gateway")?);
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while heapfleet_gateway::client::connect(&url).await.is_err() {
        if Instant::now() > deadline {
            bail!("the gateway did not listen on {url} within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (idle_rss, _) = memory_of(gateway.0.id())?;

    // Sample the gateway's memory while the uploads run.
    let pid = gateway.0.id();
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        tokio::spawn(async move {
            let mut peak = 0;
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok((rss, _)) = memory_of(pid) {
                    peak = peak.max(rss);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            peak
        })
    };

    let start = Instant::now();
    // One future per agent, polled together (the upload stream is not `Send` across spawns;
    // hashing and file reads run on the blocking pool either way).
    let tasks: Vec<_> = files
        .iter()
        .map(|path| {
            let url = url.clone();
            let path = path.clone();
            async move {
                let begun = Instant::now();
                let mut client = heapfleet_gateway::client::connect(&url).await?;
                // Like an agent: a refusal for load (UNAVAILABLE) is retried after a pause
                // that grows, with jitter so the refused agents do not return in step.
                let mut refusals = 0_u32;
                loop {
                    let metadata = pb::DumpMetadata {
                        host: "load-host".to_owned(),
                        pid: 4242,
                        ..Default::default()
                    };
                    match heapfleet_gateway::client::upload_file(&mut client, &path, metadata, None)
                        .await
                    {
                        Ok(response) => {
                            return Ok::<_, anyhow::Error>((response, begun.elapsed(), refusals));
                        }
                        Err(error) if format!("{error:#}").contains("Unavailable") => {
                            refusals += 1;
                            let jitter = u64::from(begun.elapsed().subsec_nanos() % 200);
                            let pause = (100 << refusals.min(4)) + jitter;
                            tokio::time::sleep(Duration::from_millis(pause)).await;
                        }
                        Err(error) => return Err(error),
                    }
                }
            }
        })
        .collect();
    let mut acknowledged = Vec::new();
    let mut latencies = Vec::new();
    let mut refusals = 0;
    for result in futures::future::join_all(tasks).await {
        let (response, latency, refused) = result?;
        refusals += refused;
        acknowledged.push(response);
        latencies.push(latency.as_secs_f64());
    }
    let elapsed = start.elapsed().as_secs_f64();
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let sampled_peak = sampler.await?;
    let (_, peak_rss) = memory_of(pid)?;
    latencies.sort_by(f64::total_cmp);

    // Nothing lost: every acknowledged dump is in the catalog once, with its size and hash,
    // and its object is in storage.
    let catalog: Arc<dyn Catalog> = if catalog_url.starts_with("postgres") {
        Arc::new(heapfleet_catalog::PostgresCatalog::connect(&catalog_url).await?)
    } else {
        Arc::new(heapfleet_catalog::SqliteCatalog::open(&data).await?)
    };
    let listed = catalog.list_dumps(&DumpFilter::for_tenant(&tenant)).await?;
    if listed.len() != uploads {
        bail!("{} dumps in the catalog, {uploads} uploaded", listed.len());
    }
    for (response, path) in acknowledged.iter().zip(&files) {
        let dump_id = &response
            .dump
            .as_ref()
            .context("a dump in the answer")?
            .dump_id;
        let dump = listed
            .iter()
            .find(|dump| dump.id.as_str() == dump_id)
            .with_context(|| format!("acknowledged dump {dump_id} is missing"))?;
        let (size, sha256) = heapfleet_ingest::file_size_and_sha256(path)?;
        if dump.size_bytes != size || dump.content_sha256 != sha256 {
            bail!("dump {} is stored with the wrong size or hash", dump.id);
        }
        if dump.status.kind() != DumpStatusKind::Queued {
            bail!("dump {} is {:?}, not queued", dump.id, dump.status.kind());
        }
    }
    let stored_objects = if s3_endpoint.is_none() {
        let mut count = 0;
        for dump in &listed {
            let key = dump.object_key.as_deref().context("an object key")?;
            let metadata = std::fs::metadata(data.join("objects").join(key))
                .with_context(|| format!("object {key}"))?;
            if metadata.len() != dump.size_bytes {
                bail!("object {key} has {} bytes", metadata.len());
            }
            count += 1;
        }
        format!("{count} objects checked")
    } else {
        "objects checked by the catalog's sizes".to_owned()
    };
    println!(
        "load: {uploads} concurrent uploads x {:.1} MB ({backend}): {:.1} s, {:.0} MB/s, \
         latency p50 {:.1} s max {:.1} s; {refusals} refusals for load (retried); gateway RSS \
         idle {} MB, peak {} MB (sampled {} MB); all {uploads} acknowledged dumps queued once; \
         {stored_objects}",
        total_bytes as f64 / uploads as f64 / 1e6,
        elapsed,
        total_bytes as f64 / 1e6 / elapsed,
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1],
        idle_rss >> 20,
        peak_rss >> 20,
        sampled_peak >> 20,
    );
    Ok(())
}
