//! Pipeline rate: the aggregator catching up on a preloaded stream, against a bare pull consumer
//! with the same consumer settings reading and acking the same ticks.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use async_nats::jetstream::consumer::PullConsumer;
use btc_contract::Pair;
use btc_contract::names::{AGGREGATOR_CONSUMER, TICKS_STREAM};
use futures::StreamExt;

use bench::consumer;
use bench::stack::{Nats, START_TIMEOUT, Service, StateWatch, poll_until};
use bench::ticks::{self, per_second};

/// Loaded ticks are 1 ms apart, so a million span 1,000 s and the 10-minute window evicts.
const TICK_SPACING_US: i64 = 1_000;
/// Longest time either consumer may take over the whole stream.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(900);
/// Longest pause between two messages before the bare consumer is declared stuck.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// One measured catch-up.
pub struct CatchUp {
    /// Ticks processed per second.
    pub rate: f64,
    /// Ticks stored per second while loading the stream (informational).
    pub load_rate: f64,
}

/// The ceiling: a durable pull consumer with explicit acks, filtered to `pairs` like the
/// aggregator's, reads every tick of the preloaded stream and acks each one, timed from its first
/// pull to the ack of the last tick.
pub async fn bare_consumer(ticks: u64, pairs: &[Pair]) -> anyhow::Result<CatchUp> {
    let nats = Nats::start(ticks).await?;
    let loaded = ticks::load(&nats.js, ticks, TICK_SPACING_US, pairs).await?;
    let stream = nats.js.get_stream(TICKS_STREAM).await.context("opening the ticks stream")?;
    let consumer: PullConsumer =
        stream.create_consumer(consumer::config("bench-ceiling", pairs)).await.context("creating the bare consumer")?;
    let started = Instant::now();
    let read = read_and_ack_until(&consumer, loaded.last_sequence).await?;
    let elapsed = started.elapsed();
    if read != ticks {
        bail!("the bare consumer read {read} ticks, expected {ticks}");
    }
    wait_until_acked(&consumer, loaded.last_sequence).await?;
    Ok(CatchUp { rate: per_second(read, elapsed), load_rate: loaded.rate })
}

/// Pulls in batches like the aggregator and acks every message, until `last_sequence` is read.
async fn read_and_ack_until(consumer: &PullConsumer, last_sequence: u64) -> anyhow::Result<u64> {
    let mut messages = consumer::pull(consumer).await?;
    let mut read = 0;
    loop {
        let message = tokio::time::timeout(STALL_TIMEOUT, messages.next())
            .await
            .context("the bare consumer stalled")?
            .context("the bare consumer's message stream ended")?
            .map_err(|error| anyhow!("pulling a tick: {error}"))?;
        let sequence =
            message.info().map_err(|error| anyhow!("reading a message's metadata: {error}"))?.stream_sequence;
        message.ack().await.map_err(|error| anyhow!("acking a tick: {error}"))?;
        read += 1;
        if sequence >= last_sequence {
            return Ok(read);
        }
    }
}

/// Checks (untimed) that the server took every ack: the consumer's ack floor reaches the end.
async fn wait_until_acked(consumer: &PullConsumer, last_sequence: u64) -> anyhow::Result<()> {
    poll_until("the bare consumer's acks to reach the server", START_TIMEOUT, || async {
        let mut consumer = consumer.clone();
        let info = consumer.info().await.ok()?;
        (info.ack_floor.stream_sequence >= last_sequence).then_some(())
    })
    .await
}

/// The aggregator binary: started on the empty stream and frozen (SIGSTOP) once its durable
/// consumer waits for ticks; the stream is then loaded, and the time runs from SIGCONT until
/// the state in KV carries the last tick's sequence. If `perf_data` is given, the catch-up is
/// recorded with `perf record -g` into that file.
pub async fn aggregator(ticks: u64, pairs: &[Pair], perf_data: Option<&Path>) -> anyhow::Result<CatchUp> {
    let nats = Nats::start(ticks).await?;
    let aggregator = Service::aggregator_of(&nats, pairs).await;
    aggregator.wait_until_ok("/readiness").await?;
    wait_for_pull_request(&nats, AGGREGATOR_CONSUMER).await?;
    aggregator.signal(libc::SIGSTOP)?;
    let profiler = perf_data.map(|path| Profiler::attach(aggregator.pid()?, path)).transpose()?;
    let loaded = ticks::load(&nats.js, ticks, TICK_SPACING_US, pairs).await?;
    // The stream is read in order, so the last tick's state comes once every tick is applied.
    let mut states = StateWatch::of(&nats.state_bucket().await?, &loaded.last_pair).await?;

    let continued = Instant::now();
    aggregator.signal(libc::SIGCONT)?;
    states
        .first_matching("the aggregator to catch up", CATCH_UP_TIMEOUT, |state| {
            state.stream_sequence >= loaded.last_sequence
        })
        .await
        .with_context(|| format!("aggregator log:\n{}", aggregator.log()))?;
    let elapsed = continued.elapsed();
    if let Some(profiler) = profiler {
        profiler.finish()?;
    }
    report_warnings(&aggregator);
    Ok(CatchUp { rate: per_second(ticks, elapsed), load_rate: loaded.rate })
}

/// Waits until the durable consumer `name` exists and has a pull request waiting: from then on,
/// every tick stored is its to fetch.
pub async fn wait_for_pull_request(nats: &Nats, name: &str) -> anyhow::Result<()> {
    let stream = nats.js.get_stream(TICKS_STREAM).await.context("opening the ticks stream")?;
    poll_until(&format!("the consumer {name} to wait for ticks"), START_TIMEOUT, || async {
        let info = stream.consumer_info(name).await.ok()?;
        (info.num_waiting > 0).then_some(())
    })
    .await
}

/// The aggregator logs at `warn`: anything it wrote during a measurement is worth seeing.
fn report_warnings(service: &Service) {
    let log = service.log();
    if !log.trim().is_empty() {
        eprintln!("  aggregator warnings during catch-up:\n{}", log.trim_end());
    }
}

/// `perf record -g` attached to one process, stopped with SIGINT so that it writes its data.
struct Profiler {
    child: Child,
}

impl Profiler {
    fn attach(pid: libc::pid_t, output: &Path) -> anyhow::Result<Self> {
        let child = Command::new("perf")
            .args(["record", "-g", "-p", &pid.to_string(), "-o"])
            .arg(output)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting `perf record` (is perf installed?)")?;
        Ok(Self { child })
    }

    fn finish(mut self) -> anyhow::Result<()> {
        let pid = libc::pid_t::try_from(self.child.id()).context("perf process id")?;
        // SAFETY: kill(2) with the id of our own child and a valid signal number has no memory effects.
        if unsafe { libc::kill(pid, libc::SIGINT) } != 0 {
            return Err(std::io::Error::last_os_error()).context("stopping perf");
        }
        self.child.wait().context("waiting for perf to write its data")?;
        Ok(())
    }
}
