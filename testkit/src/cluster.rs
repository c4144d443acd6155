//! A 3-node JetStream cluster on loopback for fault tests: kill -9, restart, SIGSTOP and SIGCONT
//! any node, and find the stream leader.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Ports, healthz_ok, nats_server_binary};

struct Node {
    name: String,
    /// Known once the node has started; restarts bind the same ones.
    ports: Option<Ports>,
    store: PathBuf,
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
    ///
    /// Every port is bound by nats-server itself (`-1`) and read back from its ports file. The
    /// route ports are therefore unknown until the nodes run: the first node starts on its own,
    /// the others with a route to it, and the cluster meets through it (NATS gossips the routes).
    /// Each later node is configured with routes to every node before it, so every pair has one
    /// side that dials the other again after a fault (routes learnt by gossip are not dialled
    /// again once broken). A restart binds the ports the node held, with routes to all the others.
    pub fn start(size: usize) -> Self {
        let dir = tempfile::tempdir().expect("cluster dir");
        let nodes = (0..size)
            .map(|index| {
                let name = format!("n{}", index + 1);
                let (store, config, log) = (
                    dir.path().join(&name),
                    dir.path().join(format!("{name}.conf")),
                    dir.path().join(format!("{name}.log")),
                );
                Node { name, ports: None, store, config, log, child: None }
            })
            .collect();
        let mut cluster = Self { nodes, _dir: dir };
        // JetStream in cluster mode refuses to start without a configured route; the first node
        // has no peer to name yet, so it names a loopback port where nothing listens (1, tcpmux)
        // until it is restarted with the others' routes.
        cluster.write_config(0, &["nats-route://127.0.0.1:1".to_string()]);
        cluster.spawn(0);
        for index in 1..size {
            let earlier: Vec<String> = (0..index).map(|other| cluster.route_url(other)).collect();
            cluster.write_config(index, &earlier);
            cluster.spawn(index);
        }
        cluster.wait_healthy(Duration::from_secs(30));
        cluster
    }

    /// Routes to every node but `index`.
    fn other_routes(&self, index: usize) -> Vec<String> {
        (0..self.nodes.len()).filter(|&other| other != index).map(|other| self.route_url(other)).collect()
    }

    fn route_url(&self, index: usize) -> String {
        let route = self.nodes[index].ports.and_then(|p| p.route).expect("a started node's route port");
        format!("nats-route://127.0.0.1:{route}")
    }

    /// The node's configuration with `routes`: random ports (`-1`) on its first start, the ones it
    /// held on a restart.
    fn write_config(&self, index: usize, routes: &[String]) {
        let node = &self.nodes[index];
        let port = |p: Option<u16>| p.map_or_else(|| "-1".to_string(), |p| p.to_string());
        let ports = node.ports;
        let text = format!(
            "server_name: {name}\nlisten: 127.0.0.1:{client}\nhttp: 127.0.0.1:{monitor}\n\
             jetstream {{ store_dir: \"{store}\", sync_interval: always }}\n\
             cluster {{ name: c1, listen: 127.0.0.1:{route}, routes: [{routes}] }}\n",
            name = node.name,
            client = port(ports.map(|p| p.client)),
            monitor = port(ports.map(|p| p.monitor)),
            route = port(ports.and_then(|p| p.route)),
            store = node.store.display(),
            routes = routes.join(", "),
        );
        std::fs::write(&node.config, text).expect("node config");
    }

    fn spawn(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&node.log).expect("node log");
        let ports_dir = node.store.with_extension("ports");
        std::fs::create_dir_all(&ports_dir).expect("ports file dir");
        let child = Command::new(nats_server_binary())
            .arg("-c")
            .arg(&node.config)
            .arg("--ports_file_dir")
            .arg(&ports_dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server starts");
        let pid = child.id();
        node.child = Some(child);
        node.ports = Some(Ports::read(&ports_dir, pid, Instant::now() + Duration::from_secs(20), &node.log));
    }

    /// Comma-separated client URLs of every node.
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.ports.expect("started").client))
            .collect::<Vec<_>>()
            .join(",")
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
        self.write_config(index, &self.other_routes(index));
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
            let monitor = node.ports.expect("a running node's ports").monitor;
            while !healthz_ok(monitor, "/healthz") {
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
