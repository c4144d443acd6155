//! The parts a measurement runs on: a fresh nats-server with a client, the real service binaries
//! as child processes, and waiting (with a deadline, never a fixed sleep) for what they do.

use std::future::Future;
use std::time::Duration;

use anyhow::{Context as _, bail};
use async_nats::jetstream::{self, kv};
use btc_contract::{Pair, PriceState};
use btc_runtime::jetstream::{ensure_state_bucket, ensure_ticks_stream};
use btc_runtime::nats::NatsArgs;
use btc_runtime::stream_config::StreamArgs;
use futures::StreamExt;
use testkit::NatsServer;
use testkit::process::ServiceProcess;

use crate::http;
use crate::ticks::encoded_tick_len;

/// How often a condition that gives no event (a port, a consumer's state) is polled.
const POLL_EVERY: Duration = Duration::from_millis(5);
/// Longest wait for a service to start, a consumer to appear or a state to land.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A fresh JetStream server (temporary store, killed on drop) and a client of it.
pub struct Nats {
    pub js: jetstream::Context,
    /// Settings of the ticks stream and state bucket, given to every service as well.
    pub stream_args: StreamArgs,
    // Dropped last: the server outlives the client.
    server: NatsServer,
}

impl Nats {
    /// Starts a server whose ticks stream will hold at least `ticks` ticks, and creates the stream
    /// and the state bucket with the services' own settings.
    pub async fn start(ticks: u64) -> anyhow::Result<Self> {
        let server = tokio::task::spawn_blocking(NatsServer::start).await.context("starting nats-server")?;
        let client = NatsArgs::local(server.url()).connect("bench").await.context("connecting to nats-server")?;
        let js = jetstream::new(client);
        let stream_args = stream_args_for(ticks);
        ensure_ticks_stream(&js, &stream_args).await.context("creating the ticks stream")?;
        ensure_state_bucket(&js, &stream_args).await.context("creating the state bucket")?;
        Ok(Self { js, stream_args, server })
    }

    pub fn url(&self) -> String {
        self.server.url()
    }

    pub async fn state_bucket(&self) -> anyhow::Result<kv::Store> {
        btc_runtime::jetstream::open_state_bucket(&self.js).await.context("opening the state bucket")
    }

    /// The environment a service binary needs to use this server and these stream settings.
    pub fn service_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("NATS_URL", self.url()),
            ("TICKS_MAX_BYTES", self.stream_args.ticks_max_bytes.to_string()),
            ("RUST_LOG", "warn".to_string()),
        ]
    }
}

/// The production stream settings, with room for `ticks` ticks if the 1 GiB default is too small
/// (a stream over its limit would drop the oldest ticks and the consumers would read fewer).
fn stream_args_for(ticks: u64) -> StreamArgs {
    let defaults = StreamArgs::default();
    // Payload plus subject, headers and the file store's per-message overhead, doubled for margin.
    let needed = ticks.saturating_mul(encoded_tick_len() as u64 + 128).saturating_mul(2);
    let max_bytes = defaults.ticks_max_bytes.max(i64::try_from(needed).unwrap_or(i64::MAX));
    StreamArgs { ticks_max_bytes: max_bytes, ..defaults }
}

/// A service binary from `target/<profile>/` running as a child process, killed on drop.
pub struct Service {
    process: ServiceProcess,
    /// The HTTP address it listens on (ops port or API port).
    pub addr: String,
}

impl Service {
    /// Starts `target/<profile>/aggregator` for the seed pair, BTC-USD; `addr` is its ops port.
    pub async fn aggregator(nats: &Nats) -> Self {
        Self::aggregator_of(nats, &[Pair::seed()]).await
    }

    /// Starts `target/<profile>/aggregator` for `pairs`.
    pub async fn aggregator_of(nats: &Nats, pairs: &[Pair]) -> Self {
        let pairs = pairs.iter().map(Pair::as_str).collect::<Vec<_>>().join(",");
        let env = [("OPS_ADDR", "127.0.0.1:0"), ("RUST_LOG", "warn,aggregator=info"), ("PAIRS", pairs.as_str())];
        Self::spawn("aggregator", &[], "ops_addr", nats, &env).await
    }

    /// Starts `target/<profile>/bitcoin-api`; its price never counts as stale during the run.
    pub async fn bitcoin_api(nats: &Nats) -> Self {
        Self::bitcoin_api_with(nats, &[]).await
    }

    /// [`Service::bitcoin_api`] with more settings (later ones win).
    pub async fn bitcoin_api_with(nats: &Nats, settings: &[(&str, &str)]) -> Self {
        let mut env = vec![
            ("LISTEN_ADDR", "127.0.0.1:0"),
            ("OPS_ADDR", "127.0.0.1:0"),
            ("STALE_AFTER", "24h"),
            ("RUST_LOG", "warn,frontend::server=info"),
        ];
        env.extend_from_slice(settings);
        Self::spawn("bitcoin-api", &[], "addr", nats, &env).await
    }

    /// Starts `target/<profile>/<binary> <args>` on ports the system picks (`extra_env` or `args`
    /// bind them to port 0, and `RUST_LOG` lets the `listening` line through), and reads the one
    /// in `addr_field` back from its log.
    pub async fn spawn(binary: &str, args: &[&str], addr_field: &str, nats: &Nats, extra_env: &[(&str, &str)]) -> Self {
        let env = nats.service_env();
        let mut env: Vec<(&str, &str)> = env.iter().map(|(key, value)| (*key, value.as_str())).collect();
        // Later entries win: Command::env keeps the last value of a variable.
        env.extend_from_slice(extra_env);
        let process = ServiceProcess::spawn(binary, args, &env);
        let addr = process.listening(addr_field).await.to_string();
        Self { process, addr }
    }

    pub fn pid(&self) -> anyhow::Result<libc::pid_t> {
        let pid = self.process.pid().with_context(|| format!("{} is not running", self.process.name()))?;
        libc::pid_t::try_from(pid).context("process id out of range")
    }

    /// Sends `signal` (e.g. `libc::SIGSTOP`) to the process.
    pub fn signal(&self, signal: libc::c_int) -> anyhow::Result<()> {
        // SAFETY: kill(2) with the id of our own child and a valid signal number has no memory effects.
        if unsafe { libc::kill(self.pid()?, signal) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("sending signal {signal} to {}", self.process.name()));
        }
        Ok(())
    }

    /// SIGTERM, and waits for a clean exit.
    pub fn terminate(&mut self) -> anyhow::Result<()> {
        let status = self.process.terminate().with_context(|| format!("{} was not running", self.process.name()))?;
        if !status.success() {
            bail!("{} exited with {status} on SIGTERM; log:\n{}", self.process.name(), self.process.log());
        }
        Ok(())
    }

    /// Polls `path` until it answers 200.
    pub async fn wait_until_ok(&self, path: &str) -> anyhow::Result<()> {
        let what = format!("{} to answer 200 on {path}", self.process.name());
        poll_until(&what, START_TIMEOUT, || async {
            http::status_once(&self.addr, path).await.filter(|status| status.is_success())
        })
        .await
        .with_context(|| format!("log of {}:\n{}", self.process.name(), self.process.log()))?;
        Ok(())
    }

    /// What the process wrote to stderr so far (its warnings, at RUST_LOG=warn).
    pub fn log(&self) -> String {
        self.process.log()
    }
}

/// Polls `check` every few milliseconds until it gives a value, or fails after `timeout`.
pub async fn poll_until<T, F, Fut>(what: &str, timeout: Duration, check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    testkit::poll_every(POLL_EVERY, timeout, check)
        .await
        .with_context(|| format!("timed out after {timeout:?} waiting for {what}"))
}

/// A watch on the state key that yields decoded states as the aggregator writes them.
pub struct StateWatch {
    entries: kv::Watch,
}

impl StateWatch {
    /// Watches for BTC-USD's states written from now on.
    pub async fn new(bucket: &kv::Store) -> anyhow::Result<Self> {
        Self::of(bucket, &Pair::seed()).await
    }

    /// Watches for `pair`'s states written from now on.
    pub async fn of(bucket: &kv::Store, pair: &Pair) -> anyhow::Result<Self> {
        Ok(Self { entries: bucket.watch(pair.state_key()).await.context("watching the state key")? })
    }

    /// The first state written that `accept` takes; fails after `timeout` naming `what`.
    pub async fn first_matching(
        &mut self,
        what: &str,
        timeout: Duration,
        mut accept: impl FnMut(&PriceState) -> bool,
    ) -> anyhow::Result<PriceState> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let entry = tokio::time::timeout_at(deadline, self.entries.next())
                .await
                .with_context(|| format!("timed out after {timeout:?} waiting for {what}"))?
                .context("the state watch ended")?
                .context("reading the state watch")?;
            if entry.operation != kv::Operation::Put {
                continue;
            }
            let state = PriceState::decode(&entry.value).context("decoding a state from KV")?;
            if accept(&state) {
                return Ok(state);
            }
        }
    }
}
