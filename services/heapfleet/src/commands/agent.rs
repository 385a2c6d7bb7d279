//! `heapfleet agent`: a sidecar that watches directories and sends each complete heap dump to a
//! server exactly once.
//!
//! The rules, in the order a file meets them:
//! - **Complete.** A file is a candidate only under its final name (`*.dump` or `*.dump.gz`, not
//!   a dotfile; writers use a temporary name such as `*.dump.tmp` and rename when done), and is
//!   sent only once its size and modification time are unchanged across two polls (for writers
//!   that write in place).
//! - **Once.** After the server acknowledges a dump (it answers only once the dump is durable),
//!   the file is recorded in a state file (JSON, replaced atomically: temp file, fsync, rename)
//!   and then deleted (the default), moved to `--done-dir` or kept (`--keep`). A restart reads
//!   the state file and sends nothing it lists; a crash between the acknowledgement and the
//!   state file's write re-sends the file, which the server recognises (`created: false`).
//! - **Retries.** While the server is unavailable (no connection, UNAVAILABLE), the agent waits
//!   with exponential backoff (500 ms, doubling, capped by `--max-backoff-ms`) and tries again.
//!   A file the server refuses as bad (INVALID_ARGUMENT, RESOURCE_EXHAUSTED), whose name carries
//!   no time, or that fails [`MAX_ATTEMPTS`] times for another reason is moved to
//!   `<dir>/rejected/` beside a `<name>.reason` file and never retried.
//! - **Disk.** When the pending dumps of the watched directories exceed `--max-disk-bytes`, the
//!   oldest are deleted with a warning until they fit.
//! - **Shutdown.** Ctrl-C or SIGTERM abandons the upload in flight (the gateway discards a
//!   partial upload; the file is sent again at the next start) and saves the state.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use heapfleet_dump::parse_dump_file_name;
use heapfleet_gateway::client;
use heapfleet_proto::ingest::v1 as pb;
use heapfleet_service::tls::ClientOptions;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::cli::{AgentArgs, parse_label};
use crate::output::{Format, print_json, print_line};

/// Attempts for a file failing with an error that is neither "unavailable" nor "bad file"
/// before it is moved aside.
const MAX_ATTEMPTS: u32 = 5;
/// The first wait after the server was found unavailable.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Where refused files go, inside the directory they were found in.
const REJECTED_DIR: &str = "rejected";
/// The default state file's name, in the first watched directory (a dotfile: never a dump).
const DEFAULT_STATE_FILE: &str = ".heapfleet-agent-state.json";

/// What becomes of a file once the server has acknowledged it.
#[derive(Debug, Clone)]
enum AfterUpload {
    Delete,
    MoveTo(PathBuf),
    Keep,
}

/// One dump file as a poll saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Observed {
    path: PathBuf,
    size: u64,
    mtime_unix_nanos: u64,
}

/// The state file: the files acknowledged by the server, by path.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    version: u32,
    uploaded: BTreeMap<String, UploadedFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct UploadedFile {
    size: u64,
    mtime_unix_nanos: u64,
    dump_id: String,
    uploaded_at_unix: i64,
}

/// What happened to one file, for the `--once` report.
#[derive(Debug, Serialize)]
struct FileReport {
    path: String,
    dump_id: Option<String>,
    /// `uploaded`, `already_uploaded`, `rejected` or `dropped`.
    outcome: &'static str,
    error: Option<String>,
}

#[derive(Debug, Default, Serialize)]
struct Summary {
    uploaded: u64,
    already_uploaded: u64,
    rejected: u64,
    dropped: u64,
    /// Dumps left in the watched directories, not yet complete or not yet sent.
    pending: u64,
    bytes: u64,
    seconds: f64,
}

/// The result of one upload attempt.
#[derive(Debug)]
enum Attempt {
    Acknowledged {
        dump_id: String,
        created: bool,
    },
    /// The file is bad: move it aside, never retry.
    Refused(String),
    /// The server cannot be reached: back off and retry everything later.
    Unavailable(String),
    /// Another error: retried up to [`MAX_ATTEMPTS`] times.
    Failed(String),
    /// The file disappeared meanwhile.
    Gone,
    /// Shutdown was requested during the upload.
    Stopped,
    /// The server is no heapfleet gateway (UNIMPLEMENTED): stop rather than refuse every file.
    WrongServer(String),
}

struct Agent {
    server: String,
    client_options: ClientOptions,
    watch: Vec<PathBuf>,
    host: String,
    role: String,
    env_labels: BTreeMap<String, String>,
    flag_labels: BTreeMap<String, String>,
    state_path: PathBuf,
    state: State,
    after_upload: AfterUpload,
    max_disk_bytes: u64,
    client: Option<client::IngestClient>,
    failures: HashMap<PathBuf, u32>,
    reports: Vec<FileReport>,
    summary: Summary,
    stop: CancellationToken,
}

pub(crate) async fn run(
    server: &str,
    client_options: &ClientOptions,
    args: AgentArgs,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    for dir in &args.watch {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the watched directory {}", dir.display()))?;
    }
    let env_labels = match std::env::var("HEAPFLEET_LABELS") {
        Ok(text) => parse_label_list(&text).context("invalid HEAPFLEET_LABELS")?,
        Err(_) => BTreeMap::new(),
    };
    let after_upload = match (&args.done_dir, args.keep) {
        (Some(dir), _) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create --done-dir {}", dir.display()))?;
            AfterUpload::MoveTo(dir.clone())
        }
        (None, true) => AfterUpload::Keep,
        (None, false) => AfterUpload::Delete,
    };
    let state_path = match &args.state_file {
        Some(path) => path.clone(),
        None => args.watch[0].join(DEFAULT_STATE_FILE),
    };
    let state = load_state(&state_path)?;
    let stop = CancellationToken::new();
    let signal_stop = stop.clone();
    let signal_task = tokio::spawn(async move {
        heapfleet_service::shutdown::signal().await;
        signal_stop.cancel();
    });
    let mut agent = Agent {
        server: server.to_owned(),
        client_options: client_options.clone(),
        host: match &args.host {
            Some(host) => host.clone(),
            None => gethostname::gethostname().to_string_lossy().into_owned(),
        },
        role: args.role.clone().unwrap_or_default(),
        env_labels,
        flag_labels: args.labels.iter().cloned().collect(),
        watch: args.watch.clone(),
        state_path,
        state,
        after_upload,
        max_disk_bytes: args.max_disk_bytes,
        client: None,
        failures: HashMap::new(),
        reports: Vec::new(),
        summary: Summary::default(),
        stop: stop.clone(),
    };
    tracing::info!(
        server,
        watch = ?agent.watch,
        state_file = %agent.state_path.display(),
        "agent started"
    );
    let result = agent.run_loop(&args).await;
    signal_task.abort();
    agent.save_state()?;
    result?;
    agent.summary.seconds = started.elapsed().as_secs_f64();
    if args.once {
        match format {
            Format::Json => print_json(&serde_json::json!({
                "files": agent.reports,
                "summary": agent.summary,
            }))?,
            Format::Table => print_line(&format!(
                "{} uploaded, {} already uploaded, {} rejected, {} dropped, {} pending",
                agent.summary.uploaded,
                agent.summary.already_uploaded,
                agent.summary.rejected,
                agent.summary.dropped,
                agent.summary.pending,
            ))?,
        }
    }
    Ok(ExitCode::SUCCESS)
}

impl Agent {
    /// Polls until stopped (or, with --once, until the files complete now are processed).
    async fn run_loop(&mut self, args: &AgentArgs) -> anyhow::Result<()> {
        let poll_interval = Duration::from_millis(args.poll_interval_ms.max(10));
        let max_backoff = Duration::from_millis(args.max_backoff_ms).max(FIRST_BACKOFF);
        let mut backoff = FIRST_BACKOFF;
        let mut previous: HashMap<PathBuf, Observed> = HashMap::new();
        let mut polls: u64 = 0;
        while !self.stop.is_cancelled() {
            let observed = self.scan();
            polls += 1;
            let pending = self.enforce_disk_bound(observed);
            let mut unavailable = false;
            let mut waiting: u64 = 0;
            for file in &pending {
                if self.stop.is_cancelled() {
                    break;
                }
                // Stable: the previous poll saw the same size and modification time.
                if previous.get(&file.path) != Some(file) {
                    waiting += 1;
                    continue;
                }
                match self.process(file).await {
                    Attempt::Unavailable(reason) => {
                        tracing::warn!(
                            server = %self.server,
                            %reason,
                            retry_in_ms = backoff.as_millis() as u64,
                            "server unavailable; will retry"
                        );
                        unavailable = true;
                        break;
                    }
                    Attempt::Stopped => break,
                    Attempt::WrongServer(reason) => bail!(
                        "{} does not take uploads (point --server at the gateway or \
                         `heapfleet serve`): {reason}",
                        self.server
                    ),
                    _ => backoff = FIRST_BACKOFF,
                }
            }
            previous = pending
                .into_iter()
                .map(|file| (file.path.clone(), file))
                .collect();
            self.save_state()?;
            if unavailable {
                // Forget the client: the next attempt reconnects.
                self.client = None;
                self.pause(backoff).await;
                backoff = (backoff * 2).min(max_backoff);
                continue;
            }
            if args.once && polls >= 2 {
                self.summary.pending = self.scan_pending_count();
                if waiting > 0 {
                    tracing::info!(files = waiting, "still being written; left for later");
                }
                return Ok(());
            }
            self.pause(poll_interval).await;
        }
        tracing::info!("agent stopped");
        self.summary.pending = self.scan_pending_count();
        Ok(())
    }

    /// Sleeps, or returns early on shutdown.
    async fn pause(&self, duration: Duration) {
        tokio::select! {
            () = tokio::time::sleep(duration) => {}
            () = self.stop.cancelled() => {}
        }
    }

    /// Lists the dumps under their final names in the watched directories.
    fn scan(&self) -> Vec<Observed> {
        let mut files = Vec::new();
        for dir in &self.watch {
            let entries = match std::fs::read_dir(dir) {
                Ok(entries) => entries,
                Err(error) => {
                    tracing::warn!(dir = %dir.display(), %error, "cannot list the watched directory");
                    continue;
                }
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !is_final_dump_name(&name) {
                    continue;
                }
                let Ok(metadata) = entry.metadata() else {
                    continue;
                };
                if !metadata.is_file() {
                    continue;
                }
                files.push(Observed {
                    path: entry.path(),
                    size: metadata.len(),
                    mtime_unix_nanos: mtime_nanos(&metadata),
                });
            }
        }
        files.sort_by(|a, b| (a.mtime_unix_nanos, &a.path).cmp(&(b.mtime_unix_nanos, &b.path)));
        files
    }

    fn scan_pending_count(&self) -> u64 {
        self.scan()
            .iter()
            .filter(|file| self.uploaded_entry(file).is_none())
            .count() as u64
    }

    /// The state file's record of this exact file (same path, size and mtime), if any.
    fn uploaded_entry(&self, file: &Observed) -> Option<&UploadedFile> {
        self.state
            .uploaded
            .get(&file.path.to_string_lossy().into_owned())
            .filter(|entry| {
                entry.size == file.size && entry.mtime_unix_nanos == file.mtime_unix_nanos
            })
    }

    /// Settles files already uploaded, drops the oldest pending dumps beyond the disk bound and
    /// returns the pending ones, oldest first.
    fn enforce_disk_bound(&mut self, observed: Vec<Observed>) -> Vec<Observed> {
        let mut pending = Vec::with_capacity(observed.len());
        for file in observed {
            if self.uploaded_entry(&file).is_some() {
                // Acknowledged before (a crash may have come before the file was disposed of).
                if !matches!(self.after_upload, AfterUpload::Keep) {
                    self.dispose(&file.path);
                }
                continue;
            }
            pending.push(file);
        }
        let mut total: u64 = pending
            .iter()
            .map(|file| file.size + sidecar_size(&file.path))
            .sum();
        let mut kept = Vec::with_capacity(pending.len());
        for file in pending {
            let bytes = file.size + sidecar_size(&file.path);
            if total > self.max_disk_bytes {
                tracing::warn!(
                    file = %file.path.display(),
                    bytes,
                    pending_bytes = total,
                    max_disk_bytes = self.max_disk_bytes,
                    "pending dumps exceed --max-disk-bytes; dropping the oldest"
                );
                remove_quietly(&file.path);
                remove_quietly(&sidecar_path(&file.path));
                total -= bytes;
                self.summary.dropped += 1;
                self.reports.push(FileReport {
                    path: file.path.display().to_string(),
                    dump_id: None,
                    outcome: "dropped",
                    error: Some("pending dumps exceeded --max-disk-bytes".to_owned()),
                });
                continue;
            }
            kept.push(file);
        }
        kept
    }

    /// Uploads one complete file and settles it.
    async fn process(&mut self, file: &Observed) -> Attempt {
        let attempt = self.upload(file).await;
        match &attempt {
            Attempt::Acknowledged { dump_id, created } => {
                tracing::info!(
                    file = %file.path.display(),
                    dump = %dump_id,
                    bytes = file.size,
                    created,
                    "uploaded"
                );
                self.failures.remove(&file.path);
                self.state.uploaded.insert(
                    file.path.to_string_lossy().into_owned(),
                    UploadedFile {
                        size: file.size,
                        mtime_unix_nanos: file.mtime_unix_nanos,
                        dump_id: dump_id.clone(),
                        uploaded_at_unix: unix_now(),
                    },
                );
                // Recorded before the file goes, so a crash in between sends nothing twice.
                if let Err(error) = self.save_state() {
                    tracing::warn!(error = %format!("{error:#}"), "cannot save the state file");
                }
                if *created {
                    self.summary.uploaded += 1;
                    self.summary.bytes += file.size;
                } else {
                    self.summary.already_uploaded += 1;
                }
                self.reports.push(FileReport {
                    path: file.path.display().to_string(),
                    dump_id: Some(dump_id.clone()),
                    outcome: if *created {
                        "uploaded"
                    } else {
                        "already_uploaded"
                    },
                    error: None,
                });
                self.dispose(&file.path);
            }
            Attempt::Refused(reason) => self.reject(&file.path, reason),
            Attempt::Failed(reason) => {
                let failures = self.failures.entry(file.path.clone()).or_insert(0);
                *failures += 1;
                let failures = *failures;
                tracing::warn!(file = %file.path.display(), %reason, failures, "upload failed");
                if failures >= MAX_ATTEMPTS {
                    self.failures.remove(&file.path);
                    self.reject(
                        &file.path,
                        &format!("failed {failures} times, last: {reason}"),
                    );
                }
            }
            Attempt::Gone => {
                tracing::info!(file = %file.path.display(), "the file disappeared before its upload");
            }
            Attempt::Stopped => {
                tracing::info!(
                    file = %file.path.display(),
                    "shutting down: upload abandoned; it is sent again at the next start"
                );
            }
            Attempt::Unavailable(_) | Attempt::WrongServer(_) => {}
        }
        attempt
    }

    async fn upload(&mut self, file: &Observed) -> Attempt {
        let metadata = match self.metadata_for(&file.path) {
            Ok(metadata) => metadata,
            Err(reason) => return Attempt::Refused(reason),
        };
        if self.client.is_none() {
            let connect = tokio::select! {
                connected = client::connect_with(&self.server, &self.client_options) => connected,
                () = self.stop.cancelled() => return Attempt::Stopped,
            };
            match connect {
                Ok(connected) => self.client = Some(connected),
                Err(error) => return Attempt::Unavailable(format!("{error:#}")),
            }
        }
        let Some(ingest) = self.client.as_mut() else {
            return Attempt::Unavailable("not connected".to_owned());
        };
        let sent = tokio::select! {
            sent = client::upload_file(ingest, &file.path, metadata, None) => sent,
            () = self.stop.cancelled() => return Attempt::Stopped,
        };
        match sent {
            Ok(response) => Attempt::Acknowledged {
                dump_id: response.dump.unwrap_or_default().dump_id,
                created: response.created,
            },
            Err(_) if !file.path.exists() => Attempt::Gone,
            Err(error) => classify(&error),
        }
    }

    /// The upload's metadata: the file name, the flags and env, and the sidecar when present.
    fn metadata_for(&self, path: &Path) -> Result<pb::DumpMetadata, String> {
        let file_name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parsed = parse_dump_file_name(&file_name)
            .map_err(|error| format!("{error} (expected heap-<pid>-<unix_ts>-<jobs>.dump)"))?;
        let mut metadata = pb::DumpMetadata {
            host: self.host.clone(),
            pid: parsed.pid.unwrap_or(0),
            role: self.role.clone(),
            taken_at_unix: parsed.taken_at_unix,
            jobs: parsed.jobs,
            file_name,
            ..pb::DumpMetadata::default()
        };
        // Lowest to highest: HEAPFLEET_LABELS, the sidecar, --label.
        let mut labels = self.env_labels.clone();
        let sidecar = sidecar_path(path);
        match std::fs::read(&sidecar) {
            Ok(bytes) => match serde_json::from_slice::<serde_json::Value>(&bytes) {
                Ok(serde_json::Value::Object(fields)) => {
                    apply_sidecar(&fields, &mut metadata, &mut labels);
                }
                Ok(_) | Err(_) => tracing::warn!(
                    sidecar = %sidecar.display(),
                    "the metadata sidecar is not a JSON object; sending the dump without it"
                ),
            },
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => tracing::warn!(
                sidecar = %sidecar.display(),
                %error,
                "cannot read the metadata sidecar; sending the dump without it"
            ),
        }
        labels.extend(self.flag_labels.clone());
        metadata.labels = labels.into_iter().collect();
        Ok(metadata)
    }

    /// Deletes, moves or keeps an acknowledged file (and its sidecar).
    fn dispose(&self, path: &Path) {
        match &self.after_upload {
            AfterUpload::Keep => {}
            AfterUpload::Delete => {
                remove_quietly(path);
                remove_quietly(&sidecar_path(path));
            }
            AfterUpload::MoveTo(dir) => {
                for source in [path.to_path_buf(), sidecar_path(path)] {
                    if source.exists()
                        && let Err(error) = move_into(&source, dir)
                    {
                        tracing::warn!(
                            file = %source.display(),
                            done_dir = %dir.display(),
                            error = %format!("{error:#}"),
                            "cannot move an uploaded file"
                        );
                    }
                }
            }
        }
    }

    /// Moves a bad file (and its sidecar) to `<dir>/rejected/` with a `.reason` file.
    fn reject(&mut self, path: &Path, reason: &str) {
        let rejected_dir = path
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(REJECTED_DIR);
        tracing::warn!(
            file = %path.display(),
            %reason,
            moved_to = %rejected_dir.display(),
            "dump refused; moved aside"
        );
        let moved = std::fs::create_dir_all(&rejected_dir)
            .context("cannot create the rejected directory")
            .and_then(|()| move_into(path, &rejected_dir));
        if let Err(error) = moved {
            // Never retry a refused file forever: without a place to put it, delete it.
            tracing::warn!(
                file = %path.display(),
                error = %format!("{error:#}"),
                "cannot move a refused dump aside; deleting it"
            );
            remove_quietly(path);
        } else if let Some(name) = path.file_name() {
            let mut reason_name = name.to_os_string();
            reason_name.push(".reason");
            if let Err(error) =
                std::fs::write(rejected_dir.join(reason_name), format!("{reason}\n"))
            {
                tracing::warn!(%error, "cannot write the rejection reason");
            }
        }
        let sidecar = sidecar_path(path);
        if sidecar.exists() && move_into(&sidecar, &rejected_dir).is_err() {
            remove_quietly(&sidecar);
        }
        self.summary.rejected += 1;
        self.reports.push(FileReport {
            path: path.display().to_string(),
            dump_id: None,
            outcome: "rejected",
            error: Some(reason.to_owned()),
        });
    }

    /// Writes the state file atomically, keeping only entries whose file is still there.
    fn save_state(&mut self) -> anyhow::Result<()> {
        self.state.version = 1;
        self.state.uploaded.retain(|path, entry| {
            std::fs::metadata(path).is_ok_and(|metadata| {
                metadata.len() == entry.size && mtime_nanos(&metadata) == entry.mtime_unix_nanos
            })
        });
        let bytes = serde_json::to_vec_pretty(&self.state).context("cannot encode the state")?;
        let mut temp_name = self
            .state_path
            .file_name()
            .map(std::ffi::OsStr::to_os_string)
            .unwrap_or_default();
        temp_name.push(".tmp");
        let temp = self.state_path.with_file_name(temp_name);
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut file = std::fs::File::create(&temp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&temp, &self.state_path)
        };
        write()
            .with_context(|| format!("cannot write the state file {}", self.state_path.display()))
    }
}

/// Reads the state file; a missing one is an empty state, an unreadable one is reported.
fn load_state(path: &Path) -> anyhow::Result<State> {
    match std::fs::read(path) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(state) => Ok(state),
            Err(error) => {
                // The server's de-duplication still prevents double storage: start afresh.
                tracing::warn!(
                    state_file = %path.display(),
                    %error,
                    "the state file is not valid; starting with an empty one"
                );
                Ok(State::default())
            }
        },
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(error) => {
            Err(error).with_context(|| format!("cannot read the state file {}", path.display()))
        }
    }
}

/// Whether a file name is a dump under its final name: `*.dump` or `*.dump.gz`, not a dotfile.
fn is_final_dump_name(name: &str) -> bool {
    !name.starts_with('.') && (name.ends_with(".dump") || name.ends_with(".dump.gz"))
}

/// `<dump file>.json`: the metadata sidecar the Ruby integration writes.
fn sidecar_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".json");
    PathBuf::from(name)
}

fn sidecar_size(path: &Path) -> u64 {
    std::fs::metadata(sidecar_path(path)).map_or(0, |metadata| metadata.len())
}

/// Maps a sidecar's fields: `gc_count`, `rss_bytes` and `instance` into the metadata's own
/// fields, every other scalar into a label.
fn apply_sidecar(
    fields: &serde_json::Map<String, serde_json::Value>,
    metadata: &mut pb::DumpMetadata,
    labels: &mut BTreeMap<String, String>,
) {
    for (key, value) in fields {
        match (key.as_str(), value) {
            ("gc_count", value) if value.as_u64().is_some() => metadata.gc_count = value.as_u64(),
            ("rss_bytes", value) if value.as_u64().is_some() => {
                metadata.rss_bytes = value.as_u64();
            }
            ("instance", serde_json::Value::String(text)) => metadata.instance = text.clone(),
            ("instance", serde_json::Value::Number(number)) => {
                metadata.instance = number.to_string();
            }
            (_, serde_json::Value::String(text)) => {
                labels.insert(key.clone(), text.clone());
            }
            (_, serde_json::Value::Number(number)) => {
                labels.insert(key.clone(), number.to_string());
            }
            (_, serde_json::Value::Bool(flag)) => {
                labels.insert(key.clone(), flag.to_string());
            }
            _ => tracing::debug!(key, "sidecar field is not a scalar; ignored"),
        }
    }
}

/// Sorts an upload error: a refusal of the file, an unavailable server, or something else.
fn classify(error: &anyhow::Error) -> Attempt {
    let reason = format!("{error:#}");
    match error.downcast_ref::<client::CallError>() {
        Some(call) if call.is_refusal() => Attempt::Refused(reason),
        Some(call) if call.is_wrong_server() => Attempt::WrongServer(reason),
        Some(call) if call.is_retryable() => Attempt::Unavailable(reason),
        _ => Attempt::Failed(reason),
    }
}

/// Parses `k=v,k=v` (HEAPFLEET_LABELS).
fn parse_label_list(text: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    for item in text
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        match parse_label(item) {
            Ok((key, value)) => {
                labels.insert(key, value);
            }
            Err(message) => bail!("{message}"),
        }
    }
    Ok(labels)
}

/// Moves `source` into `dir`, keeping its name (copy and delete across file systems).
fn move_into(source: &Path, dir: &Path) -> anyhow::Result<()> {
    let name = source
        .file_name()
        .with_context(|| format!("{} has no file name", source.display()))?;
    let target = dir.join(name);
    if std::fs::rename(source, &target).is_ok() {
        return Ok(());
    }
    std::fs::copy(source, &target)
        .with_context(|| format!("cannot copy {} to {}", source.display(), target.display()))?;
    std::fs::remove_file(source).with_context(|| format!("cannot remove {}", source.display()))
}

fn remove_quietly(path: &Path) {
    if let Err(error) = std::fs::remove_file(path)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(file = %path.display(), %error, "cannot delete a file");
    }
}

fn mtime_nanos(metadata: &std::fs::Metadata) -> u64 {
    metadata
        .modified()
        .ok()
        .and_then(|modified| modified.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |since| since.as_nanos() as u64)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_is_final_dump_name_skips_temporary_names() {
        assert!(is_final_dump_name("heap-1-1700000000-20.dump"));
        assert!(is_final_dump_name("heap-1-1700000000-20.dump.gz"));
        assert!(!is_final_dump_name("heap-1-1700000000-20.dump.tmp"));
        assert!(!is_final_dump_name("heap-1-1700000000-20.dump.json"));
        assert!(!is_final_dump_name(".heap-1-1700000000-20.dump"));
    }

    #[test]
    fn test_parse_label_list_reads_pairs() {
        let labels = parse_label_list("version=1.2, region=eu,,").unwrap();
        assert_eq!(labels.get("version").map(String::as_str), Some("1.2"));
        assert_eq!(labels.get("region").map(String::as_str), Some("eu"));
        assert!(parse_label_list("novalue").is_err());
    }

    #[test]
    fn test_apply_sidecar_maps_fields_and_labels() {
        let fields = serde_json::json!({
            "gc_count": 12, "rss_bytes": 1024, "instance": "boot-1",
            "ruby_version": "3.1.2", "heap_live_slots": 5000, "nested": {"a": 1}
        });
        let mut metadata = pb::DumpMetadata::default();
        let mut labels = BTreeMap::new();
        apply_sidecar(fields.as_object().unwrap(), &mut metadata, &mut labels);
        assert_eq!(metadata.gc_count, Some(12));
        assert_eq!(metadata.rss_bytes, Some(1024));
        assert_eq!(metadata.instance, "boot-1");
        assert_eq!(
            labels.get("ruby_version").map(String::as_str),
            Some("3.1.2")
        );
        assert_eq!(
            labels.get("heap_live_slots").map(String::as_str),
            Some("5000")
        );
        assert!(!labels.contains_key("nested"));
    }

    #[test]
    fn test_classify_sorts_refusals_and_outages() {
        // As the client returns them: the server's status, typed, under the upload's context.
        let answered = |status: tonic::Status| {
            anyhow::Error::new(client::CallError::from(status)).context("upload of x refused")
        };
        let refused = answered(tonic::Status::invalid_argument("size_bytes is 0"));
        assert!(matches!(classify(&refused), Attempt::Refused(_)));
        let down = answered(tonic::Status::unavailable("connection refused"));
        assert!(matches!(classify(&down), Attempt::Unavailable(_)));
        let wrong = answered(tonic::Status::unimplemented("unknown service"));
        assert!(matches!(classify(&wrong), Attempt::WrongServer(_)));
        let other = answered(tonic::Status::internal("oops"));
        assert!(matches!(classify(&other), Attempt::Failed(_)));
        // An error that is no server's answer (the file, say) is a failure, never a retry.
        let local = anyhow::anyhow!("Unavailable: looks like a status but is not one");
        assert!(matches!(classify(&local), Attempt::Failed(_)));
    }
}
