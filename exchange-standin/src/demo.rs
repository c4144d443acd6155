//! The `exchange-standin` binary's work: every venue at once, around a random-walk price. The walk
//! moves BTC-USD; every other pair a venue lists follows at its fixed-rate [`crate::level`]
//! (BTC-EUR and BTC-GBP by a fixed exchange rate, ETH-USD near 3,000), so `make demo` shows every
//! default pair moving at a plausible level.

use std::future::Future;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};

use crate::{StandIn, Venue, source_urls};

/// Largest persistent offset of one venue from the shared price (±0.05 %), like the spread
/// between real venues.
const MAX_VENUE_OFFSET: f64 = 0.0005;
/// Per-request noise, small against the offsets so each venue keeps its place.
const REQUEST_NOISE: f64 = 0.00002;

/// What the binary's flags set.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    pub bind_ip: IpAddr,
    /// Venue `i` of [`Venue::ALL`] listens on `base_port + i`, so a venue keeps its port whichever
    /// venues are chosen; 0 picks free ports.
    pub base_port: u16,
    pub venues: Vec<Venue>,
    /// Starting "true" BTC-USD price; the other pairs follow at their levels.
    pub price: f64,
    /// Standard deviation of the true price's relative move per second.
    pub volatility: f64,
}

/// Starts the stand-ins, writes `SOURCE_URLS=...` as the only line on `out`, then walks the price
/// once a second until `shutdown` resolves.
pub async fn run(config: &DemoConfig, out: &mut impl Write, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    if !(config.price.is_finite() && config.price > 0.0) {
        bail!("--price must be a positive number, not {}", config.price);
    }
    if !(config.volatility.is_finite() && config.volatility >= 0.0) {
        bail!("--volatility must be zero or positive, not {}", config.volatility);
    }
    let mut venues = config.venues.clone();
    // A venue listed twice would try its port twice.
    let mut seen = Vec::new();
    venues.retain(|venue| {
        let first = !seen.contains(venue);
        seen.push(*venue);
        first
    });
    if venues.is_empty() {
        bail!("no venues chosen");
    }

    let mut rng = XorShift::from_time();
    let mut stand_ins = Vec::with_capacity(venues.len());
    let mut offsets = Vec::with_capacity(venues.len());
    for venue in venues {
        let port = port_for(config.base_port, venue)?;
        let addr = SocketAddr::new(config.bind_ip, port);
        let offset = MAX_VENUE_OFFSET * rng.unit();
        let stand_in = StandIn::start_on(venue, config.price * (1.0 + offset), addr)
            .await
            .with_context(|| format!("cannot listen for {venue} on {addr}"))?;
        stand_in.set_noise(REQUEST_NOISE);
        tracing::info!(venue = venue.name(), url = %stand_in.base_url(), offset, "stand-in started");
        stand_ins.push(stand_in);
        offsets.push(offset);
    }

    log_levels(config.price);
    writeln!(out, "SOURCE_URLS={}", source_urls(&stand_ins)).context("cannot write to stdout")?;
    out.flush().context("cannot flush stdout")?;

    let mut true_price = config.price;
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    ticks.tick().await;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = ticks.tick() => {
                true_price = step(true_price, config.volatility, &mut rng);
                for (stand_in, offset) in stand_ins.iter().zip(&offsets) {
                    stand_in.set_price(true_price * (1.0 + offset));
                }
                tracing::debug!(true_price, "price moved");
            }
        }
    }
    tracing::info!("shutting down");
    Ok(())
}

/// Logs the pairs' starting levels, which the walk moves together.
fn log_levels(btc_usd: f64) {
    let levels: Vec<String> = crate::PAIRS
        .iter()
        .filter_map(|text| text.parse::<btc_contract::Pair>().ok())
        .map(|pair| format!("{pair}={:.2}", crate::level(&pair, btc_usd)))
        .collect();
    tracing::info!(?levels, "every venue quotes each pair it lists around these prices");
}

fn port_for(base_port: u16, venue: Venue) -> anyhow::Result<u16> {
    if base_port == 0 {
        return Ok(0);
    }
    let index = Venue::ALL.iter().position(|v| *v == venue).unwrap_or_default();
    u16::try_from(index)
        .ok()
        .and_then(|index| base_port.checked_add(index))
        .with_context(|| format!("--base-port {base_port} leaves no port for {venue}"))
}

/// One second of the random walk: a log-normal step, so the price can never reach zero.
fn step(price: f64, volatility: f64, rng: &mut XorShift) -> f64 {
    // A uniform on [-1, 1] has standard deviation 1/sqrt(3).
    let shock = rng.unit() * 3f64.sqrt();
    price * (volatility * shock).exp()
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
                return;
            }
            Err(error) => tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the stand-ins"),
        }
    }
    if let Err(error) = tokio::signal::ctrl_c().await {
        tracing::error!(%error, "cannot listen for SIGINT either; running until killed");
        std::future::pending::<()>().await;
    }
}

/// Xorshift64 PRNG: enough for prices that look alive, with no dependency.
#[derive(Debug, Clone)]
pub(crate) struct XorShift(u64);

impl XorShift {
    /// A zero state would stay zero forever, so it is replaced.
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 { 0x9E37_79B9_7F4A_7C15 } else { seed })
    }

    pub fn from_time() -> Self {
        // A counter keeps generators seeded within the same clock tick apart.
        static SEEDED: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as u64;
        let count = SEEDED.fetch_add(1, Ordering::Relaxed);
        Self::new(nanos ^ count.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform on [-1, 1].
    pub fn unit(&mut self) -> f64 {
        // The top 53 bits fill a double's mantissa exactly.
        let fraction = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        fraction * 2.0 - 1.0
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn the_walk_stays_positive_and_near_its_volatility() {
        let mut rng = XorShift::new(7);
        let mut price = 97_000.0;
        let mut squares = 0.0;
        let steps = 10_000;
        for _ in 0..steps {
            let next = step(price, 0.0005, &mut rng);
            assert!(next.is_finite() && next > 0.0);
            squares += (next / price).ln().powi(2);
            price = next;
        }
        let deviation = (squares / f64::from(steps)).sqrt();
        assert!((0.00045..0.00055).contains(&deviation), "{deviation}");
        assert_eq!(step(97_000.0, 0.0, &mut rng), 97_000.0);
    }

    #[test]
    fn unit_spans_minus_one_to_one() {
        let mut rng = XorShift::new(0);
        let draws: Vec<f64> = (0..10_000).map(|_| rng.unit()).collect();
        assert!(draws.iter().all(|d| (-1.0..=1.0).contains(d)));
        assert!(draws.iter().any(|d| *d < -0.9) && draws.iter().any(|d| *d > 0.9));
    }

    #[test]
    fn ports_follow_the_venue_order() {
        assert_eq!(port_for(9100, Venue::Coinbase).ok(), Some(9100));
        assert_eq!(port_for(9100, Venue::Coingecko).ok(), Some(9107));
        assert_eq!(port_for(0, Venue::Kraken).ok(), Some(0));
        assert!(port_for(u16::MAX, Venue::Kraken).is_err());
    }

    #[tokio::test]
    async fn run_prints_one_source_urls_line_and_stops_on_shutdown() {
        let config = DemoConfig {
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            base_port: 0,
            venues: vec![Venue::Kraken, Venue::Coinbase, Venue::Kraken],
            price: 97_000.0,
            volatility: 0.0005,
        };
        let mut out = Vec::new();
        run(&config, &mut out, async {}).await.expect("runs");
        let out = String::from_utf8(out).expect("UTF-8");
        let line = out.strip_suffix('\n').expect("one line");
        assert!(!line.contains('\n'), "{out}");
        let urls = line.strip_prefix("SOURCE_URLS=").expect("prefix");
        let names: Vec<&str> = urls.split(',').filter_map(|pair| pair.split('=').next()).collect();
        assert_eq!(names, ["kraken", "coinbase"]);
        assert!(urls.split(',').all(|pair| pair.contains("=http://127.0.0.1:")), "{urls}");
    }

    #[tokio::test]
    async fn run_rejects_impossible_settings() {
        let mut config = DemoConfig {
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            base_port: 0,
            venues: Vec::new(),
            price: 97_000.0,
            volatility: 0.0,
        };
        assert!(run(&config, &mut Vec::new(), async {}).await.is_err());
        config.venues = vec![Venue::Cexio];
        config.price = f64::NAN;
        assert!(run(&config, &mut Vec::new(), async {}).await.is_err());
    }
}
