//! The services' real binaries as child processes, for tests that need separate processes
//! (their own telemetry pipeline, signals, kill -9).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Path of a workspace binary (`target/<profile>/<name>`) for the running executable: a test in
/// `target/<profile>/deps/`, or a binary such as the benchmarks in `target/<profile>/` itself.
/// `make test` builds every binary before the tests run.
pub fn binary(name: &str) -> PathBuf {
    built(binary_dir().join(name), "--bins")
}

/// Path of a workspace example (`target/<profile>/examples/<name>`), such as the contract crate's
/// subscriber. `make test` builds the examples before the tests run.
pub fn example(name: &str) -> PathBuf {
    built(binary_dir().join("examples").join(name), "--examples")
}

/// `path`, which `cargo build --workspace <targets>` makes.
fn built(path: PathBuf, targets: &str) -> PathBuf {
    assert!(path.exists(), "{} is missing: run `cargo build --workspace {targets}` (make test does)", path.display());
    path
}

/// `target/<profile>/`, from the running executable.
fn binary_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current executable path");
    let dir = exe.parent().expect("directory of the current executable");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = if dir.file_name().is_some_and(|d| d == "deps") { dir.parent().expect("target directory") } else { dir };
    dir.to_path_buf()
}

/// A running service binary, killed on drop; its stderr goes to a log file kept for failures.
pub struct ServiceProcess {
    name: String,
    child: Option<Child>,
    log: tempfile::NamedTempFile,
}

impl ServiceProcess {
    pub fn spawn(name: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let log = tempfile::NamedTempFile::new().expect("log file");
        let stderr = log.reopen().expect("log file handle");
        let mut command = Command::new(binary(name));
        command.args(args).stdout(Stdio::null()).stderr(stderr);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self { name: name.to_string(), child: Some(child), log }
    }

    /// The address in `field` of the service's `listening` log line (`ops_addr`, or `addr` for a
    /// frontend's public port): the port it bound, which tests leave to the system (port 0).
    /// Waits for the line; panics with the log when it does not come within 20 s.
    pub async fn listening(&self, field: &str) -> SocketAddr {
        let found = crate::poll_every(Duration::from_millis(20), Duration::from_secs(20), || async {
            self.log().lines().filter(|line| line.contains("listening")).find_map(|line| field_value(line, field))
        })
        .await;
        found.unwrap_or_else(|| {
            panic!("{} logged no `listening` line with {field} in 20 s; log:\n{}", self.name, self.log())
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// What the process wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        child.wait().ok()
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The value of `field` in a log line, as the text format writes it (`field=value`, perhaps with
/// ANSI colours around the name) or the JSON one (`"field":"value"`).
fn field_value(line: &str, field: &str) -> Option<SocketAddr> {
    let plain = strip_ansi(line);
    let text = format!(" {field}=");
    let json = format!("\"{field}\":\"");
    let start = plain.find(&text).map(|at| at + text.len()).or_else(|| plain.find(&json).map(|at| at + json.len()))?;
    let value: String = plain[start..].chars().take_while(|c| !c.is_whitespace() && *c != '"').collect();
    value.parse().ok()
}

fn strip_ansi(line: &str) -> String {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ parameters... final letter
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_address_from_a_text_line_with_colours_and_from_a_json_line() {
        let text = "2026-11-29T04:00:00Z \u{1b}[32m INFO\u{1b}[0m frontend::server: listening \
                    \u{1b}[3mapp\u{1b}[0m\u{1b}[2m=\u{1b}[0mbitcoin-api \u{1b}[3maddr\u{1b}[0m\u{1b}[2m=\u{1b}[0m127.0.0.1:4100 \
                    \u{1b}[3mops_addr\u{1b}[0m\u{1b}[2m=\u{1b}[0m127.0.0.1:4200";
        assert_eq!(field_value(text, "addr"), Some("127.0.0.1:4100".parse().expect("addr")));
        assert_eq!(field_value(text, "ops_addr"), Some("127.0.0.1:4200".parse().expect("addr")));
        let json = r#"{"level":"INFO","message":"listening","ops_addr":"127.0.0.1:4300"}"#;
        assert_eq!(field_value(json, "ops_addr"), Some("127.0.0.1:4300".parse().expect("addr")));
        assert_eq!(field_value(json, "addr"), None);
    }
}
