//! The pipeline benchmark (`make bench`): the real publisher path, aggregator and bitcoin-api
//! against bare async-nats ceilings measured in the same run on the same machine. It prints
//! rows of `make bench`'s one Markdown table on stdout (with `--rows`, without the header) and its
//! progress on stderr. Benchmarks print figures; this one never
//! fails on speed, only when a service misbehaves (a tick lost, a wrong state).
//!
//! Every measurement gets a fresh `nats-server` (JetStream file storage in a temporary directory,
//! as in production) so runs do not interfere, and the production stream and bucket settings
//! (only the stream's byte limit is raised if `TICKS` ticks would not fit in the 1 GiB default).
//! The services run as their release binaries (`target/release/<name>`, `RUST_LOG=warn`). Every
//! figure is the median of `RUNS` runs; a ratio is taken within a run, then its median reported.
//!
//! 1. **Pipeline rate** (target: aggregator >= 0.6 of the ceiling). `TICKS` ticks shaped like the
//!    publisher's (eight source quotes), 1 ms apart and ending now, so the 10-minute window evicts.
//!    - *Ceiling*: a durable pull consumer with the aggregator's settings (explicit acks,
//!      `max_ack_pending` 10,000, batches of 500, same heartbeat and expiry) reads the preloaded
//!      stream and acks every tick; timed from its first pull to its last ack. This is the least
//!      any at-least-once consumer of the stream must do.
//!    - *Aggregator*: the binary starts on the empty stream; once its durable consumer has a pull
//!      request waiting it is frozen with SIGSTOP, the stream is loaded, and it is thawed with
//!      SIGCONT. Timed from SIGCONT to the KV state (seen through a KV watch) carrying the last
//!      tick's sequence. The aggregator does what the ceiling does plus its own work (decode,
//!      window, one compare-and-set state write per batch), and its time ends at the state write,
//!      before its last batch's acks, so the comparison does not favour the ceiling. Starting it
//!      on the loaded stream instead would measure its replay (an ordered consumer), not the
//!      durable consumer it runs on in steady state. After a load longer than two heartbeats
//!      (10 s) the thawed client may report one missed idle heartbeat, which the aggregator logs
//!      (shown on stderr) and moves past at once.
//!    - The load rate (async publish, many acks in flight) is printed for information.
//! 2. **Publish rate**: `publisher::publish::publish_tick` (trace context, metrics, `Nats-Msg-Id`
//!    from the tick time, await the ack) against a bare loop doing the same JetStream publish
//!    with a `Nats-Msg-Id` and awaiting each ack; one ack in flight each, `PUBLISH_TICKS` distinct
//!    ticks each, both encoding the tick inside the timed loop. They take turns in chunks of 500
//!    ticks on the same stream, so background load on the machine hits both alike.
//! 3. **Freshness** (target: p99 within 2x the floor's): aggregator and bitcoin-api as processes;
//!    each of `FRESHNESS_TICKS` ticks is published through the publisher path, and from the moment
//!    its ack returns `GET /btc/USD` is polled back to back on one keep-alive HTTP/1.1 connection
//!    until the served `time` is the tick's. One tick at a time; a warm-up tick is not counted.
//!    The polling client shares the two cores with the services, so the figure is pessimistic.
//!    - *Floor*: the hops a tick takes in bare async-nats, on a fresh server with the same
//!      settings: publish with a `Nats-Msg-Id` and await the ack; a durable pull consumer with the
//!      aggregator's settings puts each tick's bytes under the state key, then acks; a KV watch
//!      on the key yields it. Timed from the ack to the watch, one tick at a time. The service
//!      adds the aggregator's and bitcoin-api's work and the HTTP poll.
//! 4. **Cold start** (target <= 1 s): a full window in the stream (600 s of ticks of BTC-USD at 10
//!    and at 100 ticks/s, and of the 4 default pairs at 100 ticks/s each, in turn); production's
//!    1 tick/s per pair is far below. One aggregator computes the reference states and is stopped
//!    (SIGTERM: it writes its window checkpoints); the state keys are deleted so the next values
//!    are necessarily new; a new aggregator process with the same consumer name (a pod restart)
//!    is timed from spawn until every pair's state carries its last tick, whose averages must
//!    equal the reference exactly: once restoring the checkpoints (the target's row), once with
//!    them deleted (a first start: every window replayed). Beside them, for reference, bare
//!    ordered consumers (one per pair, at once, as the replay reads) reading the same ticks and
//!    doing nothing else: what the server's delivery of a replay costs.
//!
//! Settings (environment): `RUNS` (3), `TICKS` (1,000,000), `PUBLISH_TICKS` (20,000),
//! `FRESHNESS_TICKS` (10,000), `PARTS` (which parts, comma-separated: `catch-up`, `publish`,
//! `freshness`, `cold-start`; all by default); `PERF_DATA=<file>` records the first run's aggregator catch-ups with
//! `perf record -g`, one file per row (`<file>.1-pairs`, `<file>.4-pairs`, ...; that run's figures
//! are then perturbed by the profiler).
//!
//! The modules live in `bench/src/pipeline/` (a binary's root looks beside itself, hence `#[path]`).

#[path = "pipeline/catch_up.rs"]
mod catch_up;
#[path = "pipeline/cold_start.rs"]
mod cold_start;
#[path = "pipeline/freshness.rs"]
mod freshness;
#[path = "pipeline/publish_rate.rs"]
mod publish_rate;
#[path = "pipeline/report.rs"]
mod report;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, bail};
use btc_contract::Pair;

use bench::ticks;
use report::{Results, Sizes};

/// The capacity row: this many pairs at 1 tick/s each for this many seconds, stored in turn (the
/// ticks 1 ms apart), so a batch holds one tick of hundreds of pairs and nearly every tick costs
/// its own state write, as when many pairs tick once a second.
const MANY_PAIRS: usize = 1_000;
const MANY_PAIRS_SECONDS: u64 = 100;

struct Settings {
    runs: usize,
    ticks: u64,
    publish_ticks: u64,
    freshness_ticks: u64,
    perf_data: Option<PathBuf>,
    /// The parts measured (`PARTS`, comma-separated): `catch-up`, `publish`, `freshness`,
    /// `cold-start`; all by default.
    parts: Vec<String>,
}

const PARTS: [&str; 4] = ["catch-up", "publish", "freshness", "cold-start"];

impl Settings {
    fn measures(&self, part: &str) -> bool {
        self.parts.iter().any(|wanted| wanted == part)
    }

    fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            runs: usize::try_from(count_from_env("RUNS", 3)?).context("RUNS")?,
            ticks: count_from_env("TICKS", 1_000_000)?,
            publish_ticks: count_from_env("PUBLISH_TICKS", 20_000)?,
            freshness_ticks: count_from_env("FRESHNESS_TICKS", 10_000)?,
            perf_data: std::env::var_os("PERF_DATA").filter(|path| !path.is_empty()).map(PathBuf::from),
            parts: parts_from_env()?,
        })
    }

    fn sizes(&self) -> Sizes {
        Sizes {
            runs: self.runs,
            ticks: self.ticks,
            publish_ticks: self.publish_ticks,
            freshness_ticks: self.freshness_ticks,
            load_acks_in_flight: ticks::LOAD_ACKS_IN_FLIGHT,
            many_pairs: MANY_PAIRS,
            many_pairs_seconds: MANY_PAIRS_SECONDS,
        }
    }
}

/// The parts named in `PARTS`, else every part.
fn parts_from_env() -> anyhow::Result<Vec<String>> {
    let Ok(text) = std::env::var("PARTS") else { return Ok(PARTS.map(String::from).to_vec()) };
    let parts: Vec<String> = text.split(',').map(|part| part.trim().to_string()).collect();
    if let Some(unknown) = parts.iter().find(|part| !PARTS.contains(&part.as_str())) {
        bail!("PARTS names {unknown:?}; the parts are {}", PARTS.join(", "));
    }
    Ok(parts)
}

/// A positive whole number from the environment variable `name`, else `default`.
fn count_from_env(name: &str, default: u64) -> anyhow::Result<u64> {
    let Ok(text) = std::env::var(name) else { return Ok(default) };
    let value: u64 = text.trim().replace('_', "").parse().with_context(|| format!("{name}={text:?} is not a count"))?;
    if value == 0 {
        bail!("{name} must be at least 1");
    }
    Ok(value)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let started = Instant::now();
    let mut results = Results::default();
    for run in 1..=settings.runs {
        eprintln!("run {run}/{}", settings.runs);
        let perf_data = settings.perf_data.as_deref().filter(|_| run == 1);
        if settings.measures("catch-up") {
            measure_catch_up(&settings, perf_data, &mut results).await?;
        }
        if settings.measures("publish") {
            measure_publish(&settings, &mut results).await?;
        }
        if settings.measures("freshness") {
            measure_freshness(&settings, &mut results).await?;
        }
        if settings.measures("cold-start") {
            measure_cold_starts(&mut results).await?;
        }
    }
    eprintln!("done in {:.0} s", started.elapsed().as_secs_f64());
    // `--rows`: only the rows, for bench/run.sh to append to its table.
    results.print(&settings.sizes(), std::env::args().any(|arg| arg == "--rows"));
    Ok(())
}

async fn measure_catch_up(
    settings: &Settings,
    perf_data: Option<&std::path::Path>,
    results: &mut Results,
) -> anyhow::Result<()> {
    let many = many_pairs(MANY_PAIRS)?;
    let sizes = [
        (vec![Pair::seed()], settings.ticks),
        (Pair::defaults(), settings.ticks),
        (many, MANY_PAIRS as u64 * MANY_PAIRS_SECONDS),
    ];
    for (index, (pairs, ticks)) in sizes.into_iter().enumerate() {
        let ceiling = catch_up::bare_consumer(ticks, &pairs).await.context("bare consumer")?;
        eprintln!(
            "  {} pair(s): bare consumer: {:.0} msgs/s (loaded at {:.0} msgs/s)",
            pairs.len(),
            ceiling.rate,
            ceiling.load_rate
        );
        let row_perf_data = perf_data.map(|path| PathBuf::from(format!("{}.{}-pairs", path.display(), pairs.len())));
        let aggregator =
            catch_up::aggregator(ticks, &pairs, row_perf_data.as_deref()).await.context("aggregator catch-up")?;
        eprintln!(
            "  {} pair(s): aggregator catch-up: {:.0} msgs/s (loaded at {:.0} msgs/s)",
            pairs.len(),
            aggregator.rate,
            aggregator.load_rate
        );
        let compared = match index {
            0 => &mut results.catch_up,
            1 => &mut results.catch_up_pairs,
            _ => &mut results.catch_up_many_pairs,
        };
        compared.push(aggregator.rate, ceiling.rate);
        results.load_rates.extend([ceiling.load_rate, aggregator.load_rate]);
    }
    Ok(())
}

/// `count` made-up pairs (`P0001-USD`, ...): the capacity row's.
fn many_pairs(count: usize) -> anyhow::Result<Vec<Pair>> {
    (1..=count).map(|i| format!("P{i:04}-USD").parse::<Pair>().context("a made-up pair")).collect()
}

async fn measure_publish(settings: &Settings, results: &mut Results) -> anyhow::Result<()> {
    let rates = publish_rate::measure(settings.publish_ticks).await.context("publish rate")?;
    eprintln!("  publish: publisher path {:.0} msgs/s, bare publisher {:.0} msgs/s", rates.publisher_path, rates.bare);
    results.publish.push(rates.publisher_path, rates.bare);
    Ok(())
}

async fn measure_freshness(settings: &Settings, results: &mut Results) -> anyhow::Result<()> {
    let floor = freshness::floor(settings.freshness_ticks).await.context("freshness floor")?;
    let service = freshness::measure(settings.freshness_ticks).await.context("freshness")?;
    for (what, figures) in [("bare async-nats chain", &floor), ("publisher path to bitcoin-api", &service)] {
        eprintln!(
            "  freshness, {what}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            figures.p50_ms, figures.p99_ms, figures.max_ms
        );
    }
    results.freshness.push((service, floor));
    Ok(())
}

async fn measure_cold_starts(results: &mut Results) -> anyhow::Result<()> {
    for (ticks_per_second, pairs) in [(10, vec![Pair::seed()]), (100, vec![Pair::seed()]), (100, Pair::defaults())] {
        let measured = cold_start::measure(ticks_per_second, &pairs)
            .await
            .with_context(|| format!("cold start of {} pair(s) at {ticks_per_second} ticks/s", pairs.len()))?;
        let ms = |duration: std::time::Duration| duration.as_secs_f64() * 1000.0;
        let (restart_ms, replay_ms, floor_ms) = (ms(measured.restart), ms(measured.replay), ms(measured.floor));
        eprintln!(
            "  cold start, {} pair(s) at {ticks_per_second} ticks/s x 600 s: {restart_ms:.0} ms from the checkpoints, \
             {replay_ms:.0} ms without (bare ordered consumers: {floor_ms:.0} ms)",
            pairs.len()
        );
        let cold_start = results.cold_start_mut(ticks_per_second, pairs.len());
        cold_start.restart.push(restart_ms, floor_ms);
        cold_start.replay.push(replay_ms, floor_ms);
    }
    Ok(())
}
