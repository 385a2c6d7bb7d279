//! Command-line interface: every command, flag and its help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::output::Format;

/// Find what is leaking across a fleet of Ruby processes, from their `ObjectSpace.dump_all`
/// heap dumps.
///
/// By default everything runs in this one process on a local data directory (no servers
/// needed): import dumps, list them, look inside one, and diff several dumps of one process.
/// With --server URL the read commands (dumps, show, diff, leaks, compare, timeline, paths,
/// retained, dominators) ask
/// a heapfleet server instead, `upload` and `agent` send dumps to one, `delete` deletes on one,
/// and `serve` runs a whole server on the data directory.
#[derive(Debug, Parser)]
#[command(
    name = "heapfleet",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub(crate) struct Cli {
    /// Where heapfleet keeps its catalog and aggregates.
    #[arg(
        long,
        global = true,
        env = "HEAPFLEET_DATA_DIR",
        default_value = "heapfleet-data"
    )]
    pub(crate) data_dir: PathBuf,

    /// A heapfleet server to use instead of the data directory: `heapfleet serve`, or the
    /// distributed stack's query service (the read commands) or gateway (upload, agent,
    /// delete).
    #[arg(long, global = true, env = "HEAPFLEET_SERVER", value_name = "URL")]
    pub(crate) server: Option<String>,

    /// The bearer token to send to --server (servers with `[auth]` tokens need one).
    #[arg(
        long,
        global = true,
        env = "HEAPFLEET_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub(crate) token: Option<String>,

    /// Trust only this CA certificate (PEM) for an https:// --server, instead of the public
    /// web roots (for a private CA or a self-signed server certificate).
    #[arg(long, global = true, env = "HEAPFLEET_TLS_CA", value_name = "FILE")]
    pub(crate) tls_ca: Option<PathBuf>,

    /// Output for people (table) or for scripts (json).
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,

    /// Log more (-v: info, -vv: debug). Logs go to stderr; RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,

    /// How log lines look on stderr: text (coloured only on a terminal) or json (one object
    /// per line, for log pipelines).
    #[arg(
        long,
        global = true,
        value_enum,
        env = "HEAPFLEET_LOG_FORMAT",
        default_value_t = LogFormatArg::Text
    )]
    pub(crate) log_format: LogFormatArg,

    #[command(subcommand)]
    pub(crate) command: Command,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormatArg {
    /// Lines for people.
    Text,
    /// One JSON object per line.
    Json,
}

impl From<LogFormatArg> for heapfleet_telemetry::LogFormat {
    fn from(format: LogFormatArg) -> heapfleet_telemetry::LogFormat {
        match format {
            LogFormatArg::Text => heapfleet_telemetry::LogFormat::Text,
            LogFormatArg::Json => heapfleet_telemetry::LogFormat::Json,
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Import heap dumps (files or directories, searched recursively) into the data directory.
    ///
    /// Each file is parsed once. Pid, time and jobs counter come from the file name
    /// (heap-<unix_ts>.dump or heap-<pid>-<unix_ts>-<jobs>.dump, optionally .gz); give
    /// --taken-at for files named otherwise. Importing the same content again does nothing.
    Import(ImportArgs),
    /// List imported dumps.
    Dumps(DumpsArgs),
    /// Show one dump: totals by generation, or a roll-up (--by), or one generation (--generation).
    Show(ShowArgs),
    /// Diff dumps of one process: objects present in every later dump and absent from the first.
    ///
    /// Objects are matched by identity (object_id where Ruby wrote one; otherwise address, type,
    /// site and generation), so a reused slot is never mistaken for a retained object.
    Diff(DiffArgs),
    /// Rank the allocation sites that leak: whose retained objects keep rising, in which
    /// processes and on which hosts, how fast, since when.
    ///
    /// Reads every ingested dump in scope (at least 3 dumps per process to judge it). See the
    /// README, "How leaks are ranked", for what counts and how the score works.
    Leaks(LeaksArgs),
    /// Compare two selections of processes, site by site: growth and size in A vs B.
    ///
    /// A selector is key=value[,key=value...]: host=, role=, pid=, since=, until= (Unix seconds
    /// or RFC 3339) select by process and time; any other key is a label (version=1.3).
    Compare(CompareArgs),
    /// One site's live objects across dumps, per process, as a table, JSON or a chart (SVG, PNG).
    Timeline(TimelineArgs),
    /// Why objects are alive: the shortest chains of references from the GC roots to the
    /// objects of a site (FILE:LINE) or to one object (0xADDRESS) in one dump, clustered.
    ///
    /// Every matching object's shortest path is reduced to its signature: the root category,
    /// then per step a CLASS or MODULE's own name, else the class name, else the type, with the
    /// allocation site where traced (`vm › Workload › Array (app.rb:9) › String (app.rb:12)`).
    /// Objects whose paths share a signature form one cluster, so a leak's many near-identical
    /// paths print once, with how many objects they hold and their share of the reachable ones;
    /// --addresses adds an example path with its addresses (JSON always has it).
    ///
    /// The dump is parsed again (no object graph is kept at ingest): from object storage for an
    /// uploaded dump or a kept import, or from --file for one imported with --no-keep.
    Paths(PathsArgs),
    /// Who holds the memory of one dump: retained bytes and objects per site (with the
    /// objects that hold each site's objects, its owners), class or type.
    ///
    /// A group's retained size is what the garbage collector would free with it: its objects
    /// and everything only they keep alive, each object counted once. An owner is the object
    /// that accumulates a site's objects (see the README, "Who holds a leak"). Read from the
    /// dump's ownership pass, which runs after its ingest; with --file, computed here from the
    /// dump's file.
    Retained(RetainedArgs),
    /// One dump's dominator tree: the objects that keep the most memory alive and, level by
    /// level, what each of them holds, with retained sizes.
    ///
    /// From the roots, the top of the tree comes from the dump's ownership pass; deeper, wider
    /// or from an object (--from), the dump is parsed again (from object storage, or --file).
    Dominators(DominatorsArgs),
    /// Import the example dumps shipped with heapfleet and show what they reveal.
    Demo(DemoArgs),
    /// Send heap dumps (files or directories) to a heapfleet server, which ingests them.
    ///
    /// Needs --server URL (the gateway, or `heapfleet serve`). Pid, time and jobs counter come
    /// from the file name, as for import. The same content from the same process is stored
    /// once, however often it is sent. With --wait, waits until every dump is ingested.
    Upload(UploadArgs),
    /// Delete dumps everywhere: their aggregates and object index, their dump files and their
    /// catalog entries.
    ///
    /// Works on the data directory, or with --server URL on a gateway (or `heapfleet serve`).
    /// A dump being ingested is left alone (outcome being_ingested): delete it once its ingest
    /// ends. A delete cut short leaves the dump listed as failed ("being deleted"); running the
    /// command again finishes it. Exit status 1 if any dump was not deleted.
    Delete(DeleteArgs),
    /// Run a heapfleet server on the data directory: the upload API, ingest workers and the
    /// query API in one process on one port, with the embedded catalog and store.
    ///
    /// Point other machines' `heapfleet upload --server` and the read commands' --server at it.
    /// Stops gracefully on Ctrl-C or SIGTERM.
    Serve(ServeArgs),
    /// Watch directories and send each complete heap dump to a server once: a sidecar for every
    /// host running Ruby processes.
    ///
    /// A dump is complete when it has its final name (*.dump or *.dump.gz; temporary names such
    /// as *.tmp and dotfiles are ignored) and its size and modification time are unchanged
    /// across two polls. Pid, time and jobs come from the file name; role and labels from the
    /// flags or HEAPFLEET_ROLE / HEAPFLEET_LABELS; a metadata sidecar <dump>.json adds GC count,
    /// RSS, instance and labels. Retries with backoff while the server is unavailable; moves a
    /// file the server refuses into <dir>/rejected/ with the reason. Remembers what it sent in a
    /// state file, so a restart sends nothing twice. Stops gracefully on Ctrl-C or SIGTERM.
    Agent(AgentArgs),
    /// Make an access token for servers with authentication (a config's `[auth]` table).
    ///
    /// Prints a new random token (give it to the client: --token or HEAPFLEET_TOKEN) and the
    /// `[[auth.tokens]]` entry for the servers' config, which holds only the token's SHA-256.
    Token(TokenArgs),
}

/// `heapfleet token`.
#[derive(Debug, clap::Args)]
pub(crate) struct TokenArgs {
    /// The tenant the token acts for.
    #[arg(long)]
    pub(crate) tenant: String,
    /// What the token may do: read (queries), upload (agents; includes read) or admin
    /// (everything, including deleting dumps).
    #[arg(long, value_parser = ["read", "upload", "admin"])]
    pub(crate) role: String,
}

/// Which dumps a fleet command reads.
#[derive(Debug, Clone, Args)]
pub(crate) struct ScopeArgs {
    /// Only processes on this host.
    #[arg(long)]
    pub(crate) host: Option<String>,

    /// Only this pid.
    #[arg(long)]
    pub(crate) pid: Option<u32>,

    /// Only processes of this role.
    #[arg(long)]
    pub(crate) role: Option<String>,

    /// Only dumps with this label, as key=value (repeatable; all must match).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub(crate) labels: Vec<(String, String)>,

    /// Only dumps taken at or after this time (Unix seconds or RFC 3339).
    #[arg(long, value_parser = parse_time)]
    pub(crate) since: Option<i64>,

    /// Only dumps taken before this time (Unix seconds or RFC 3339).
    #[arg(long, value_parser = parse_time)]
    pub(crate) until: Option<i64>,
}

#[derive(Debug, Args)]
pub(crate) struct LeaksArgs {
    #[command(flatten)]
    pub(crate) scope: ScopeArgs,

    /// Suspects to show.
    #[arg(long, default_value_t = 20)]
    pub(crate) top: usize,

    /// Rank by the score weighted by the memory each leak adds per dump (retained bytes where
    /// the ownership pass ran, else the objects' own), or by the object-growth score alone.
    #[arg(long, value_enum, default_value_t = LeakRankArg::Memory)]
    pub(crate) rank: LeakRankArg,

    /// Show every column (score, objects per dump and hour, per 1,000 jobs, since when).
    #[arg(long)]
    pub(crate) wide: bool,
}

/// How `leaks` ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LeakRankArg {
    /// The score weighted by the bytes added per dump.
    Memory,
    /// The object-growth score.
    Objects,
}

#[derive(Debug, Args)]
pub(crate) struct CompareArgs {
    /// The first selection, e.g. `version=1.2` or `host=web-1` or `until=2026-11-01T00:00:00Z`.
    #[arg(long, value_name = "SELECTOR")]
    pub(crate) a: String,

    /// The second selection, e.g. `version=1.3`.
    #[arg(long, value_name = "SELECTOR")]
    pub(crate) b: String,

    /// Rows to show.
    #[arg(long, default_value_t = 20)]
    pub(crate) top: usize,
}

#[derive(Debug, Args)]
pub(crate) struct TimelineArgs {
    /// The site as FILE:LINE; FILE may be a trailing part of the path (app/models/user.rb:12).
    pub(crate) site: String,

    #[command(flatten)]
    pub(crate) scope: ScopeArgs,

    /// Also draw the timeline as a chart into this file (.svg or .png).
    #[arg(long, value_name = "FILE")]
    pub(crate) plot: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct PathsArgs {
    /// Dump id (or a unique prefix of one).
    pub(crate) dump: String,

    /// FILE:LINE (FILE may be a trailing part of the path), or an object's 0xADDRESS.
    pub(crate) target: String,

    /// Clusters to show, the most objects first (every object is counted either way).
    #[arg(long, default_value_t = 5)]
    pub(crate) max: usize,

    /// Also print each cluster's example path, object by object, with addresses.
    #[arg(long)]
    pub(crate) addresses: bool,

    /// The dump's file, for a dump imported with --no-keep (its SHA-256 must match).
    #[arg(long, value_name = "PATH")]
    pub(crate) file: Option<PathBuf>,
}

/// What `retained` groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RetainedByArg {
    /// Allocation site (file, line, type, class), with owners.
    Site,
    /// Class name.
    Class,
    /// Object type.
    Type,
}

#[derive(Debug, Args)]
pub(crate) struct RetainedArgs {
    /// Dump id (or a unique prefix of one).
    pub(crate) dump: String,

    /// Group by allocation site, class or type.
    #[arg(long, value_enum, default_value_t = RetainedByArg::Site)]
    pub(crate) by: RetainedByArg,

    /// Rows to show, most retained bytes first.
    #[arg(long, default_value_t = 20)]
    pub(crate) top: usize,

    /// Compute from this file (the dump's own, checked by its SHA-256) instead of the stored
    /// results: for a dump imported with --no-keep.
    #[arg(long, value_name = "PATH")]
    pub(crate) file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct DominatorsArgs {
    /// Dump id (or a unique prefix of one).
    pub(crate) dump: String,

    /// Children shown per object, the largest first (and objects at the top level).
    #[arg(long, default_value_t = 10)]
    pub(crate) top: usize,

    /// Levels shown.
    #[arg(long, default_value_t = 3)]
    pub(crate) depth: u32,

    /// Start from this object (0xADDRESS) instead of the roots.
    #[arg(long, value_name = "0xADDRESS", value_parser = parse_address)]
    pub(crate) from: Option<u64>,

    /// Compute from this file (the dump's own, checked by its SHA-256): for a dump imported
    /// with --no-keep.
    #[arg(long, value_name = "PATH")]
    pub(crate) file: Option<PathBuf>,
}

/// Parses `0x7f3a...` (or bare hex digits) as an address.
fn parse_address(text: &str) -> Result<u64, String> {
    let digits = text.strip_prefix("0x").unwrap_or(text);
    u64::from_str_radix(digits, 16).map_err(|_| format!("{text:?} is not a hex address"))
}

#[derive(Debug, Args)]
pub(crate) struct UploadArgs {
    /// Dump files or directories.
    #[arg(required = true)]
    pub(crate) paths: Vec<PathBuf>,

    /// Host the dumps came from (default: this machine's hostname).
    #[arg(long, conflicts_with = "hosts_from_subdirs")]
    pub(crate) host: Option<String>,

    /// Treat each immediate sub-directory of a given directory as one host's dumps.
    #[arg(long)]
    pub(crate) hosts_from_subdirs: bool,

    /// A label for every dump, as key=value (repeatable): app version, region, ...
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub(crate) labels: Vec<(String, String)>,

    /// Role of the processes (sidekiq, web, ...).
    #[arg(long)]
    pub(crate) role: Option<String>,

    /// Process instance (start time or instance id), to tell apart processes that reused a pid.
    #[arg(long, default_value = "")]
    pub(crate) instance: String,

    /// When the dumps were taken (Unix seconds or RFC 3339), for files whose names carry no time.
    #[arg(long, value_parser = parse_time)]
    pub(crate) taken_at: Option<i64>,

    /// Wait until every uploaded dump is ingested (ready or failed) and its ownership pass
    /// (retained sizes and owners) has ended.
    #[arg(long)]
    pub(crate) wait: bool,

    /// With --wait, give up after this many seconds.
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    pub(crate) wait_timeout: u64,
}

#[derive(Debug, Args)]
pub(crate) struct DeleteArgs {
    /// Dump ids (or unique prefixes), as `heapfleet dumps` lists them.
    #[arg(required = true, value_name = "DUMP")]
    pub(crate) dumps: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on; use 0.0.0.0:7400 to accept other machines.
    #[arg(long, env = "HEAPFLEET_LISTEN", default_value = "127.0.0.1:7400")]
    pub(crate) listen: std::net::SocketAddr,

    /// Dumps ingested at once.
    #[arg(long, default_value_t = 1)]
    pub(crate) concurrency: usize,

    /// Largest dump accepted, in bytes.
    #[arg(long, default_value_t = 16 << 30)]
    pub(crate) max_dump_bytes: u64,

    /// Delete the dumps taken longer ago than this (e.g. 30d, 12h, 90m) everywhere, at start
    /// and then every --retention-interval [default: keep every dump].
    #[arg(
        long,
        env = "HEAPFLEET_RETENTION_MAX_AGE",
        value_name = "AGE",
        value_parser = parse_positive_duration
    )]
    pub(crate) retention_max_age: Option<std::time::Duration>,

    /// Time between two retention sweeps (with --retention-max-age).
    #[arg(
        long,
        env = "HEAPFLEET_RETENTION_INTERVAL",
        value_name = "INTERVAL",
        default_value = "1h",
        value_parser = parse_positive_duration
    )]
    pub(crate) retention_interval: std::time::Duration,
}

#[derive(Debug, Args)]
pub(crate) struct AgentArgs {
    /// A directory to watch for dumps (repeatable; not searched recursively).
    #[arg(long = "watch", value_name = "DIR", required = true)]
    pub(crate) watch: Vec<PathBuf>,

    /// Host the dumps come from (default: this machine's hostname).
    #[arg(long, env = "HEAPFLEET_HOST")]
    pub(crate) host: Option<String>,

    /// Role of the processes (sidekiq, web, ...).
    #[arg(long, env = "HEAPFLEET_ROLE")]
    pub(crate) role: Option<String>,

    /// A label for every dump, as key=value (repeatable); added to HEAPFLEET_LABELS
    /// (k=v,k=v) and to the sidecar's, and wins over both.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub(crate) labels: Vec<(String, String)>,

    /// Where the agent remembers what it uploaded (default: .heapfleet-agent-state.json in the
    /// first watched directory).
    #[arg(long, value_name = "PATH")]
    pub(crate) state_file: Option<PathBuf>,

    /// After an acknowledged upload, move the dump (and its sidecar) into this directory.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["delete", "keep"])]
    pub(crate) done_dir: Option<PathBuf>,

    /// After an acknowledged upload, delete the dump and its sidecar (the default).
    #[arg(long, conflicts_with = "keep")]
    pub(crate) delete: bool,

    /// After an acknowledged upload, leave the dump in place (the state file remembers it).
    #[arg(long)]
    pub(crate) keep: bool,

    /// When the pending dumps in the watched directories exceed this many bytes, drop the
    /// oldest (with a warning) until they fit.
    #[arg(long, default_value_t = 10 << 30, value_name = "BYTES")]
    pub(crate) max_disk_bytes: u64,

    /// Milliseconds between two looks at the watched directories.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub(crate) poll_interval_ms: u64,

    /// Longest wait between two attempts while the server is unavailable, in milliseconds
    /// (the wait starts at 500 ms and doubles).
    #[arg(long, default_value_t = 30_000, value_name = "MS")]
    pub(crate) max_backoff_ms: u64,

    /// Process the dumps that are complete now (two polls apart), then exit.
    #[arg(long)]
    pub(crate) once: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// Dump files or directories.
    #[arg(required = true)]
    pub(crate) paths: Vec<PathBuf>,

    /// Host the dumps came from (default: this machine's hostname).
    #[arg(long, conflicts_with = "hosts_from_subdirs")]
    pub(crate) host: Option<String>,

    /// Treat each immediate sub-directory of a given directory as one host's dumps.
    #[arg(long)]
    pub(crate) hosts_from_subdirs: bool,

    /// A label for every imported dump, as key=value (repeatable): app version, region, ...
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub(crate) labels: Vec<(String, String)>,

    /// Role of the processes (sidekiq, web, ...).
    #[arg(long)]
    pub(crate) role: Option<String>,

    /// Process instance (start time or instance id), to tell apart processes that reused a pid.
    #[arg(long, default_value = "")]
    pub(crate) instance: String,

    /// When the dumps were taken (Unix seconds or RFC 3339), for files whose names carry no time.
    #[arg(long, value_parser = parse_time)]
    pub(crate) taken_at: Option<i64>,

    /// Fail a dump at its first invalid line instead of counting and skipping bad lines.
    #[arg(long)]
    pub(crate) strict: bool,

    /// Keep no copy of the files in the data directory. By default each imported file is
    /// copied into its `objects/` (as `serve` keeps uploads), so that retained sizes, owners,
    /// dominators and retainer paths can read it again; without a copy those need --file.
    #[arg(long)]
    pub(crate) no_keep: bool,
}

#[derive(Debug, Args)]
pub(crate) struct DumpsArgs {
    /// Only dumps from this host.
    #[arg(long)]
    pub(crate) host: Option<String>,

    /// Only dumps of this pid.
    #[arg(long)]
    pub(crate) pid: Option<u32>,

    /// Only dumps of this role.
    #[arg(long)]
    pub(crate) role: Option<String>,

    /// Only dumps with this label, as key=value (repeatable; all must match).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub(crate) labels: Vec<(String, String)>,
}

/// A roll-up dimension for `show --by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ByArg {
    /// file:line
    Site,
    /// File
    File,
    /// Gem (from the file path)
    Gem,
    /// Class name
    Class,
    /// Object type
    Type,
    /// Allocation generation
    Generation,
}

/// A ranking for `show --by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RankArg {
    /// Bytes held
    Memsize,
    /// Object count
    Count,
    /// Outgoing references
    References,
}

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// Dump id (or a unique prefix of one), as `heapfleet dumps` lists them.
    pub(crate) dump: String,

    /// Drill into one generation: a number, or `none` for objects without one.
    #[arg(long, value_parser = parse_generation)]
    pub(crate) generation: Option<GenerationArg>,

    /// Roll objects up by this dimension.
    #[arg(long, value_enum)]
    pub(crate) by: Option<ByArg>,

    /// Rank roll-up rows by this.
    #[arg(long, value_enum, default_value_t = RankArg::Memsize)]
    pub(crate) rank: RankArg,

    /// Rows per list.
    #[arg(long, default_value_t = 20)]
    pub(crate) top: usize,
}

/// A `--generation` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GenerationArg {
    Number(u32),
    None,
}

#[derive(Debug, Args)]
pub(crate) struct DiffArgs {
    /// Two or more dump ids (or unique prefixes) of one process, oldest first.
    #[arg(required = true, num_args = 2..)]
    pub(crate) dumps: Vec<String>,

    /// Rows to show.
    #[arg(long, default_value_t = 20)]
    pub(crate) top: usize,
}

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Directory of example dumps (one process's series).
    #[arg(long, default_value = "tests/fixtures/dumps/series")]
    pub(crate) dumps: PathBuf,
}

pub(crate) fn parse_label(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("label {text:?} is not KEY=VALUE"))?;
    if key.is_empty() {
        return Err(format!("label {text:?} has an empty key"));
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// Parses Unix seconds or an RFC 3339 time into Unix seconds.
pub(crate) fn parse_time(text: &str) -> Result<i64, String> {
    if let Ok(seconds) = text.parse::<i64>() {
        return Ok(seconds);
    }
    text.parse::<jiff::Timestamp>()
        .map(|timestamp| timestamp.as_second())
        .map_err(|error| format!("{text:?} is neither Unix seconds nor an RFC 3339 time: {error}"))
}

/// Parses a positive duration such as `30d`, `12h`, `90m` or `45s`.
fn parse_positive_duration(text: &str) -> Result<std::time::Duration, String> {
    let duration = heapfleet_ingester::parse_duration(text)?;
    if duration.is_zero() {
        return Err(format!("{text:?} is not a positive duration"));
    }
    Ok(duration)
}

fn parse_generation(text: &str) -> Result<GenerationArg, String> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(GenerationArg::None);
    }
    text.parse()
        .map(GenerationArg::Number)
        .map_err(|_| format!("generation {text:?} is neither a number nor `none`"))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn test_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn test_parse_label_requires_key_and_equals() {
        assert_eq!(
            parse_label("version=1.2=b"),
            Ok(("version".to_owned(), "1.2=b".to_owned()))
        );
        assert!(parse_label("novalue").is_err());
        assert!(parse_label("=x").is_err());
    }

    #[test]
    fn test_parse_time_accepts_unix_and_rfc3339() {
        assert_eq!(parse_time("1700000000"), Ok(1_700_000_000));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000));
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn test_parse_positive_duration_refuses_zero_and_nonsense() {
        assert_eq!(
            parse_positive_duration("30d"),
            Ok(std::time::Duration::from_secs(30 * 86_400))
        );
        assert!(parse_positive_duration("0h").is_err());
        assert!(parse_positive_duration("a month").is_err());
    }

    #[test]
    fn test_serve_retention_is_off_by_default() {
        let cli = Cli::try_parse_from(["heapfleet", "serve"]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(args.retention_max_age, None);
        assert_eq!(
            args.retention_interval,
            std::time::Duration::from_secs(3600)
        );
        let cli = Cli::try_parse_from(["heapfleet", "serve", "--retention-max-age", "7d"]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(
            args.retention_max_age,
            Some(std::time::Duration::from_secs(7 * 86_400))
        );
        let refused = Cli::try_parse_from(["heapfleet", "serve", "--retention-max-age", "0d"]);
        assert!(refused.is_err());
    }

    #[test]
    fn test_parse_generation_accepts_numbers_and_none() {
        assert_eq!(parse_generation("12"), Ok(GenerationArg::Number(12)));
        assert_eq!(parse_generation("NONE"), Ok(GenerationArg::None));
        assert!(parse_generation("-1").is_err());
    }
}
