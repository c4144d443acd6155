//! A 3-node JetStream cluster on loopback for fault tests: kill -9, restart, SIGSTOP and SIGCONT
//! any node, and find the stream leader.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, healthz_ok, nats_server_binary};

struct Node {
    name: String,
    port: u16,
    monitor_port: u16,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

pub struct NatsCluster {
    nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl NatsCluster {
    /// Starts `size` nodes with JetStream (`sync_interval: always`) and waits for a meta leader.
    pub fn start(size: usize) -> Self {
        let dir = tempfile::tempdir().expect("cluster dir");
        let route_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let routes: Vec<String> = route_ports.iter().map(|p| format!("nats-route://127.0.0.1:{p}")).collect();
        let mut nodes = Vec::new();
        for (index, route_port) in route_ports.iter().enumerate() {
            let name = format!("n{}", index + 1);
            let (port, monitor_port) = (free_port(), free_port());
            let store = dir.path().join(&name);
            let config = dir.path().join(format!("{name}.conf"));
            let text = format!(
                "server_name: {name}\nlisten: 127.0.0.1:{port}\nhttp: 127.0.0.1:{monitor_port}\n\
                 jetstream {{ store_dir: \"{}\", sync_interval: always }}\n\
                 cluster {{ name: c1, listen: 127.0.0.1:{route_port}, routes: [{}] }}\n",
                store.display(),
                routes.join(", ")
            );
            std::fs::write(&config, text).expect("node config");
            let log = dir.path().join(format!("{name}.log"));
            nodes.push(Node { name, port, monitor_port, config, log, child: None });
        }
        let mut cluster = Self { nodes, _dir: dir };
        for index in 0..size {
            cluster.spawn(index);
        }
        cluster.wait_healthy(Duration::from_secs(30));
        cluster
    }

    fn spawn(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&node.log).expect("node log");
        let child = Command::new(nats_server_binary())
            .arg("-c")
            .arg(&node.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server starts");
        node.child = Some(child);
    }

    /// Comma-separated client URLs of every node.
    pub fn urls(&self) -> String {
        self.nodes.iter().map(|n| format!("nats://127.0.0.1:{}", n.port)).collect::<Vec<_>>().join(",")
    }

    pub fn node_name(&self, index: usize) -> &str {
        &self.nodes[index].name
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// SIGKILL: the process dies with whatever it had not written.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.nodes[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self, index: usize) {
        self.kill(index);
        self.spawn(index);
    }

    /// SIGSTOP: the node is frozen, its sockets open (a pause, as a GC or a VM stall would).
    pub fn pause(&self, index: usize) {
        self.signal(index, "-STOP");
    }

    pub fn resume(&self, index: usize) {
        self.signal(index, "-CONT");
    }

    fn signal(&self, index: usize, signal: &str) {
        if let Some(child) = &self.nodes[index].child {
            let _ = Command::new("kill").args([signal, &child.id().to_string()]).status();
        }
    }

    /// Waits until every running node reports healthy (JetStream meta leader known).
    pub fn wait_healthy(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for node in self.nodes.iter().filter(|n| n.child.is_some()) {
            while !healthz_ok(node.monitor_port, "/healthz") {
                if Instant::now() > deadline {
                    let log = std::fs::read_to_string(&node.log).unwrap_or_default();
                    panic!("{} not healthy within {timeout:?}; log:\n{log}", node.name);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for index in 0..self.nodes.len() {
            self.resume(index);
            self.kill(index);
        }
    }
}
