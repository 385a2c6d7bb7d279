//! What the command's end-to-end tests share: running `heapfleet` on a data directory (its
//! output, or its JSON answer), and a `heapfleet serve` child process on a loopback port, killed
//! when dropped.

// Each test binary that includes this module uses only some of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `heapfleet --data-dir DATA_DIR ARGS...` to its end.
pub(crate) fn heapfleet(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_heapfleet"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .output()
        .expect("heapfleet runs")
}

/// Runs `heapfleet --data-dir DATA_DIR --format json ARGS...`, which must succeed, and returns
/// its JSON answer.
pub(crate) fn json(data_dir: &Path, args: &[&str]) -> serde_json::Value {
    let mut with_format = vec!["--format", "json"];
    with_format.extend_from_slice(args);
    let output = heapfleet(data_dir, &with_format);
    assert!(
        output.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("{args:?} printed no JSON ({error})"))
}

/// How long a server may take to accept connections.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// A loopback address nothing listens on.
pub(crate) fn free_address() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("127.0.0.1:{port}")
}

/// A `heapfleet serve` child process, killed when dropped; its stderr (info logs) is kept
/// next to its data directory.
pub(crate) struct Server {
    child: Child,
    pub(crate) url: String,
    stderr: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `heapfleet --data-dir DATA -v serve EXTRA...` on a free loopback port.
    pub(crate) fn start(data_dir: &Path, extra: &[&str]) -> Server {
        Server::start_at(data_dir, &free_address(), extra)
    }

    /// Starts `heapfleet --data-dir DATA -v serve --listen ADDRESS EXTRA...` and waits until
    /// it accepts connections.
    pub(crate) fn start_at(data_dir: &Path, address: &str, extra: &[&str]) -> Server {
        let stderr = data_dir.with_extension("serve-stderr.log");
        let child = Command::new(env!("CARGO_BIN_EXE_heapfleet"))
            .arg("--data-dir")
            .arg(data_dir)
            .arg("-v")
            .args(["serve", "--listen", address])
            .args(extra)
            .env_remove("HEAPFLEET_SERVER")
            // -v logs at info (tests read the log); RUST_LOG would override it.
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let mut server = Server {
            child,
            url: format!("http://{address}"),
            stderr,
        };
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if std::net::TcpStream::connect(address).is_ok() {
                return server;
            }
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("heapfleet serve exited with {status}: {}", server.log());
            }
            assert!(
                Instant::now() < deadline,
                "heapfleet serve does not accept connections on {address}: {}",
                server.log()
            );
            std::thread::park_timeout(Duration::from_millis(50));
        }
    }

    /// What the server has logged so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}
