//! The services' real binaries as child processes, for tests that need separate processes
//! (their own telemetry pipeline, signals, kill -9).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// Path of a workspace binary (`target/<profile>/<name>`) for the running executable: a test in
/// `target/<profile>/deps/`, or a binary such as the benchmarks in `target/<profile>/` itself.
/// `make test` builds every binary before the tests run.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current executable path");
    let dir = exe.parent().expect("directory of the current executable");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = if dir.file_name().is_some_and(|d| d == "deps") { dir.parent().expect("target directory") } else { dir };
    let path = dir.join(name);
    assert!(path.exists(), "{} is missing: run `cargo build --workspace --bins` (make test does)", path.display());
    path
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

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
