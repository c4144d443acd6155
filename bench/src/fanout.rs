//! The fan-out benchmark (`make bench`): one bitcoin-api process pushing BTC-USD's stream to
//! 1,000 and 10,000 concurrent Server-Sent Events clients, beside a bare hyper broadcaster of the
//! same bytes to the same clients (`sse-ceiling`), each measured in the same run on the same
//! machine. It prints rows of `make bench`'s one table on stdout, its progress on stderr.
//! Benchmarks print figures; this one fails only when a server misbehaves (a stream refused).
//!
//! Each measurement: a fresh nats-server with the production stream and bucket; one tick and its
//! state written first (a stream waits for a first state); the server started; every client
//! connected (500 at a time) with its response head read; then `FANOUT_TICKS` ticks at 10 per
//! second, each stored in the ticks stream and then its state written to KV, as the aggregator
//! does. Each client times every `price` event from the moment its state write was issued to the
//! moment it read the event; a client that skips or repeats a tick counts it lost or duplicated,
//! and the ticks it has not read 30 s after the last write count lost too.
//! - *Delivery*: p50 and p99 over every client's every measured event (target at 10,000 clients:
//!   p99 within 2x the ceiling's).
//! - *Server CPU per tick*: the server's user + system time from the first write to the last
//!   event read, over the ticks.
//! - *Server RSS* (target at 10,000 clients: at most 64 MiB) right after the last write, every
//!   client connected, and its peak.
//!
//! The clients run in this process, on the same two cores as the server, so every figure is
//! pessimistic, for both servers alike. The ceiling sends what bitcoin-api sends (`retry:`, then a
//! `price` and an `average` event per state, encoded by bitcoin-api's own code) as soon as its KV
//! watch sees the state: it reads no tick from the stream, keeps no history and has no limit.
//!
//! Settings (environment): `RUNS` (3), `FANOUT_CLIENTS` ("1000 10000"), `FANOUT_TICKS` (100).
//! Needs a file limit above the clients (bench/run.sh raises the soft limit to the hard one).

#[path = "fanout/clients.rs"]
mod clients;
#[path = "fanout/writer.rs"]
mod writer;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bench::procfs;
use bench::stack::{Nats, Service};
use bench::stats::{median, percentile};

use clients::Clients;
use writer::{WriteTimes, Writer};

/// The rate of ticks: ten a second.
const TICK_EVERY: Duration = Duration::from_millis(100);
/// How long the clients have to read the last tick once it is written.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
const STREAM_PATH: &str = "/btc/USD/stream";
/// File descriptors the process needs beyond one per client (NATS, logs, the runtime).
const SPARE_FILES: u64 = 256;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Server {
    Ceiling,
    BitcoinApi,
}

impl Server {
    fn name(self) -> &'static str {
        match self {
            Server::Ceiling => "ceiling: bare hyper broadcaster",
            Server::BitcoinApi => "bitcoin-api",
        }
    }

    async fn start(self, nats: &Nats, clients: usize) -> anyhow::Result<Service> {
        Ok(match self {
            Server::Ceiling => Service::spawn("sse-ceiling", &["127.0.0.1:0"], "addr", nats, &[]).await,
            Server::BitcoinApi => {
                // Room for every client: the default limit (10,000) is exactly the top level.
                let limit = (clients + 1_000).to_string();
                let service = Service::bitcoin_api_with(nats, &[("STREAM_LIMIT", &limit), ("PAIRS", "BTC-USD")]).await;
                service.wait_until_ok("/readiness").await?;
                service
            }
        })
    }
}

/// One measurement's figures.
struct Measured {
    p50_ms: f64,
    p99_ms: f64,
    lost: u64,
    duplicated: u64,
    dropped: usize,
    cpu_ms_per_tick: f64,
    rss_mib: f64,
    peak_mib: f64,
}

async fn measure(server: Server, clients: usize, ticks: u64) -> anyhow::Result<Measured> {
    let nats = Nats::start(ticks + 1).await?;
    let mut writer = Writer::new(&nats).await?;
    let first = writer.write(None).await?;
    let service = server.start(&nats, clients).await?;
    let pid = service.pid()?;
    let times = Arc::new(WriteTimes::new(first + ticks));
    let connected = Instant::now();
    let readers = Clients::connect(&service.addr, STREAM_PATH, clients, times.clone()).await?;
    eprintln!("    {} clients connected in {:.1} s", clients, connected.elapsed().as_secs_f64());

    let cpu_before = procfs::cpu_seconds(pid)?;
    let mut every = tokio::time::interval(TICK_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = first;
    for _ in 0..ticks {
        every.tick().await;
        last = writer.write(Some(&times)).await?;
    }
    let (rss_mib, _) = procfs::memory_mib(pid)?;
    let seen = readers.finish(first + 1, last, DRAIN_TIMEOUT).await?;
    let cpu = procfs::cpu_seconds(pid)? - cpu_before;
    let (_, peak_mib) = procfs::memory_mib(pid)?;

    let mut latencies: Vec<u32> = seen.iter().flat_map(|client| client.latencies_us.iter().copied()).collect();
    latencies.sort_unstable();
    let ms = |quantile| percentile(&latencies, quantile).map_or(f64::NAN, |&us| f64::from(us) / 1000.0);
    Ok(Measured {
        p50_ms: ms(0.50),
        p99_ms: ms(0.99),
        lost: seen.iter().map(|client| client.lost).sum(),
        duplicated: seen.iter().map(|client| client.duplicated).sum(),
        dropped: seen.iter().filter(|client| client.dropped).count(),
        cpu_ms_per_tick: cpu * 1000.0 / ticks as f64,
        rss_mib,
        peak_mib,
    })
}

/// Raises this process's soft file limit to its hard one (the servers it starts inherit it) and
/// checks that `clients` connections fit.
fn raise_file_limit(clients: usize) -> anyhow::Result<()> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read and write the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(std::io::Error::last_os_error()).context("getrlimit(RLIMIT_NOFILE)");
        }
        limit.rlim_cur = limit.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
            return Err(std::io::Error::last_os_error()).context("setrlimit(RLIMIT_NOFILE)");
        }
    }
    let needed = clients as u64 + SPARE_FILES;
    if limit.rlim_cur < needed {
        bail!("{clients} clients need {needed} open files, and the hard limit is {} (ulimit -Hn)", limit.rlim_cur);
    }
    Ok(())
}

struct Settings {
    runs: usize,
    levels: Vec<usize>,
    ticks: u64,
}

impl Settings {
    fn from_env() -> anyhow::Result<Self> {
        let number = |name: &str, default: &str| -> anyhow::Result<u64> {
            let text = std::env::var(name).unwrap_or_else(|_| default.to_string());
            text.trim().replace('_', "").parse().with_context(|| format!("{name}={text:?} is not a count"))
        };
        let levels = std::env::var("FANOUT_CLIENTS").unwrap_or_else(|_| "1000 10000".to_string());
        let levels = levels
            .split_whitespace()
            .map(|level| level.replace('_', "").parse().with_context(|| format!("FANOUT_CLIENTS: {level:?}")))
            .collect::<anyhow::Result<Vec<usize>>>()?;
        let settings = Self {
            runs: usize::try_from(number("RUNS", "3")?).context("RUNS")?,
            levels,
            ticks: number("FANOUT_TICKS", "100")?,
        };
        if settings.runs == 0 || settings.ticks == 0 || settings.levels.is_empty() || settings.levels.contains(&0) {
            bail!("RUNS, FANOUT_TICKS and every FANOUT_CLIENTS level must be at least 1");
        }
        Ok(settings)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    raise_file_limit(settings.levels.iter().copied().max().unwrap_or_default())?;
    let started = Instant::now();
    // Per level, per server: one measurement per run.
    let mut results: Vec<[Vec<Measured>; 2]> = settings.levels.iter().map(|_| [Vec::new(), Vec::new()]).collect();
    for run in 1..=settings.runs {
        eprintln!("fan-out run {run}/{}", settings.runs);
        for (level, &clients) in settings.levels.iter().enumerate() {
            for (slot, server) in [Server::Ceiling, Server::BitcoinApi].into_iter().enumerate() {
                eprintln!("  {} clients, {}", clients, server.name());
                let measured = measure(server, clients, settings.ticks)
                    .await
                    .with_context(|| format!("{} with {clients} clients", server.name()))?;
                eprintln!(
                    "    delivery p50 {:.2} ms, p99 {:.2} ms; lost {}, duplicated {}, dropped {}; CPU {:.2} ms/tick; RSS {:.1} MiB (peak {:.1})",
                    measured.p50_ms,
                    measured.p99_ms,
                    measured.lost,
                    measured.duplicated,
                    measured.dropped,
                    measured.cpu_ms_per_tick,
                    measured.rss_mib,
                    measured.peak_mib
                );
                results[level][slot].push(measured);
            }
        }
    }
    eprintln!("fan-out done in {:.0} s", started.elapsed().as_secs_f64());
    for (level, &clients) in settings.levels.iter().enumerate() {
        print_rows(clients, &settings, &results[level][0], &results[level][1]);
    }
    Ok(())
}

/// The table's rows for one level: bitcoin-api's medians beside the ceiling's.
fn print_rows(clients: usize, settings: &Settings, ceiling: &[Measured], api: &[Measured]) {
    let of = |runs: &[Measured], field: fn(&Measured) -> f64| median(&runs.iter().map(field).collect::<Vec<_>>());
    // A ratio is taken within a run, then its median reported.
    let ratio = |field: fn(&Measured) -> f64| {
        median(&api.iter().zip(ceiling).map(|(api, ceiling)| field(api) / field(ceiling)).collect::<Vec<_>>())
    };
    let top = clients >= 10_000;
    let label = format!(
        "bitcoin-api stream fan-out, {} SSE clients at 10 ticks/s ({} ticks, median of {})",
        thousands(clients),
        settings.ticks,
        settings.runs
    );
    let (p99, ceiling_p99) = (of(api, |m| m.p99_ms), of(ceiling, |m| m.p99_ms));
    let p99_ratio = ratio(|m| m.p99_ms);
    let (target, met) = if top { ("p99 <= 2x", yes(p99_ratio <= 2.0)) } else { ("—", "—".to_string()) };
    println!(
        "| {label}: delivery p50 / p99 ms, KV write to client read | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} (p99) | {target} | {met} |",
        of(api, |m| m.p50_ms),
        p99,
        of(ceiling, |m| m.p50_ms),
        ceiling_p99,
        p99_ratio
    );
    let total = |runs: &[Measured], field: fn(&Measured) -> u64| runs.iter().map(field).sum::<u64>();
    let (lost, duplicated) = (total(api, |m| m.lost), total(api, |m| m.duplicated));
    let dropped: usize = api.iter().map(|m| m.dropped).sum();
    println!(
        "| {label}: events lost / duplicated / clients dropped, all runs | {lost} / {duplicated} / {dropped} | {} / {} / {} | — | 0 | {} |",
        total(ceiling, |m| m.lost),
        total(ceiling, |m| m.duplicated),
        ceiling.iter().map(|m| m.dropped).sum::<usize>(),
        yes(lost == 0 && duplicated == 0 && dropped == 0)
    );
    let (cpu, ceiling_cpu) = (of(api, |m| m.cpu_ms_per_tick), of(ceiling, |m| m.cpu_ms_per_tick));
    println!(
        "| {label}: server CPU per tick, ms | {cpu:.2} | {ceiling_cpu:.2} | {:.2} | — | — |",
        ratio(|m| m.cpu_ms_per_tick)
    );
    let rss = of(api, |m| m.rss_mib);
    let (target, met) = if top { ("RSS <= 64", yes(rss <= 64.0)) } else { ("—", "—".to_string()) };
    println!(
        "| {label}: server RSS / peak, MiB | {rss:.1} / {:.1} | {:.1} / {:.1} | — | {target} | {met} |",
        of(api, |m| m.peak_mib),
        of(ceiling, |m| m.rss_mib),
        of(ceiling, |m| m.peak_mib)
    );
}

fn yes(met: bool) -> String {
    if met { "yes".to_string() } else { "**no**".to_string() }
}

/// `10000` as `10,000`.
fn thousands(value: usize) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}
