//! Local HTTP stand-ins for the exchanges the publisher polls.
//!
//! Each [`StandIn`] serves one venue on its own loopback port and answers, for every pair the venue
//! lists ([`Venue::lists`]) at its real path, in that venue's real, documented format
//! (`shared/exchange-apis.md`), so the publisher's adapters parse it exactly as they parse the
//! exchange; a pair the venue does not list gets the venue's own "unknown pair" answer. A test can make one venue fail, throttle, hang or lie (see
//! [`Behaviour`]) while the others stay healthy. The `exchange-standin` binary runs all of them
//! with a random-walk price for `make demo`.

use std::fmt;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use btc_contract::Pair;
use poem::Server;
use poem::listener::TcpAcceptor;
use tokio::sync::watch;

mod bodies;
mod demo;
mod endpoint;
mod prices;
mod route;
mod venue;

pub use bodies::HOSTILE_TEXT;
use demo::XorShift;
pub use demo::{DemoConfig, run, shutdown_signal};
use endpoint::VenueEndpoint;
pub use prices::level;
pub use venue::{PAIRS, Venue};

/// How the stand-in answers the next requests.
#[derive(Debug, Clone, PartialEq)]
pub enum Behaviour {
    /// 200, real format, current price, quote time = now where the venue has one.
    Normal,
    /// That status with the venue's error body shape (e.g. 500, 503).
    Status(u16),
    /// 429 with a `Retry-After` header and the venue's rate-limit body.
    RateLimited { retry_after_secs: u64 },
    /// Accepts the request and never answers, until the behaviour changes (then answers as the
    /// new behaviour says) or the stand-in is dropped.
    Hang,
    /// 200 with a truncated, invalid JSON body.
    Garbage,
    /// The venue's error shape: with status 200 where the venue does that (Kraken `error[]`,
    /// Bitfinex `["error", ...]`), else its documented 4xx error body and status.
    ExchangeError,
    /// 200, valid JSON in the real format, price field absent.
    MissingField,
    /// 200, real format, the price field set to this literal JSON text (`"\"NaN\""`, `"0"`, `"1e308"`).
    RawPrice(String),
    /// 200 and the headers at once, then the real body one byte per `byte_every_ms`: a slow drip.
    SlowBody { byte_every_ms: u64 },
    /// A normal answer, sent only after `delay_ms`: an exchange that is slow but works.
    Delayed { delay_ms: u64 },
    /// The venue's rate-limit signal inside an HTTP 200 where it has one: Kraken
    /// `{"error": ["EAPI:Rate limit exceeded"]}`, Bitfinex `{"error": "ERR_RATE_LIMIT"}`, Binance.US a
    /// normal answer whose weight headers are at the 1200-a-minute limit. Other venues answer
    /// their 429, without `Retry-After`.
    ThrottledIn200,
    /// Binance.US: a normal answer whose weight headers report `n` used this minute, as when
    /// other clients behind the same IP spend the budget. Other venues: a normal answer.
    UsedWeight(u32),
    /// A redirect with this status (301, 302, 303, 307, 308) to `location`, as a moved API, a
    /// captive portal or a hijacked DNS name answers.
    Redirect { status: u16, location: String },
    /// HTTP 200 with the venue's error shape (Kraken's `error` list, Bitfinex's `["error", code,
    /// text]`, Gemini's `reason`/`message`...) whose text fills the body to about `body_bytes`:
    /// terminal escapes, CR/LF that would forge log lines, NUL, bidi overrides, and plain text.
    HugeError { body_bytes: usize },
}

/// Binance.US's `REQUEST_WEIGHT` limit per IP and minute.
pub const BINANCE_WEIGHT_LIMIT: u32 = 1200;

/// State shared by the handle and the server task.
pub(crate) struct Shared {
    venue: Venue,
    /// The BTC-USD price; the other pairs' follow it unless set ([`prices::PairPrices`]).
    price_bits: AtomicU64,
    pair_prices: prices::PairPrices,
    noise_bits: AtomicU64,
    rng: Mutex<XorShift>,
    requests: AtomicU64,
    /// Requests being answered now, and the most there ever were at once.
    active: AtomicU64,
    max_active: AtomicU64,
    /// Binance.US weight spent: (unix minute, requests in it); every ticker request weighs 1.
    weight: Mutex<(u64, u32)>,
    // watch channels rather than plain fields: a hanging request must wake when they change.
    behaviour: watch::Sender<Behaviour>,
    shutdown: watch::Sender<bool>,
}

impl Shared {
    /// The price of `pair` for one answer: its price, moved by the per-request noise if any.
    fn price_now(&self, pair: &Pair) -> f64 {
        let price = self.pair_prices.get(pair, f64::from_bits(self.price_bits.load(Ordering::Relaxed)));
        let noise = f64::from_bits(self.noise_bits.load(Ordering::Relaxed));
        if noise == 0.0 {
            return price;
        }
        let unit = self.rng.lock().unwrap_or_else(PoisonError::into_inner).unit();
        price * (1.0 + noise * unit)
    }

    /// Counts one request against this minute's weight and returns the weight used so far.
    fn spend_weight(&self, now: Duration) -> u32 {
        let minute = now.as_secs() / 60;
        let mut weight = self.weight.lock().unwrap_or_else(PoisonError::into_inner);
        if weight.0 != minute {
            *weight = (minute, 0);
        }
        weight.1 = weight.1.saturating_add(1);
        weight.1
    }
}

/// Counts a request as active while it lives, so a cancelled request is counted out too.
pub(crate) struct Active<'a>(&'a Shared);

impl<'a> Active<'a> {
    fn enter(shared: &'a Shared) -> Self {
        let now = shared.active.fetch_add(1, Ordering::Relaxed) + 1;
        shared.max_active.fetch_max(now, Ordering::Relaxed);
        Active(shared)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One venue's stand-in server; stops when dropped.
pub struct StandIn {
    shared: Arc<Shared>,
    addr: SocketAddr,
}

impl StandIn {
    /// Starts serving `venue` on a free port of 127.0.0.1.
    pub async fn start(venue: Venue, price: f64) -> std::io::Result<StandIn> {
        Self::start_on(venue, price, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Starts serving `venue` on `addr`. The socket is bound before this returns, so requests can
    /// be sent at once.
    pub async fn start_on(venue: Venue, price: f64, addr: SocketAddr) -> std::io::Result<StandIn> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let acceptor = TcpAcceptor::from_tokio(listener)?;
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            venue,
            price_bits: AtomicU64::new(price.to_bits()),
            pair_prices: prices::PairPrices::default(),
            noise_bits: AtomicU64::new(0.0f64.to_bits()),
            rng: Mutex::new(XorShift::from_time()),
            requests: AtomicU64::new(0),
            active: AtomicU64::new(0),
            max_active: AtomicU64::new(0),
            weight: Mutex::new((0, 0)),
            behaviour: watch::channel(Behaviour::Normal).0,
            shutdown,
        });
        let stopped = stopped(&shared.shutdown);
        let endpoint = VenueEndpoint { shared: Arc::clone(&shared) };
        tokio::spawn(async move {
            // The timeout bounds how long keep-alive and in-flight connections may hold the task
            // after the drop.
            let served = Server::new_with_acceptor(acceptor)
                .name(venue.name())
                .run_with_graceful_shutdown(endpoint, stopped, Some(Duration::from_secs(1)))
                .await;
            if let Err(error) = served {
                tracing::warn!(venue = venue.name(), %error, "stand-in server failed");
            }
        });
        tracing::debug!(venue = venue.name(), %addr, "stand-in listening");
        Ok(StandIn { shared, addr })
    }

    pub fn venue(&self) -> Venue {
        self.shared.venue
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT`, without a trailing slash, as `SOURCE_URLS` wants it.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sets the BTC-USD price the next answers show; the other pairs follow at their [`level`]
    /// unless set with [`Self::set_pair_price`]. Use [`Behaviour::RawPrice`] for non-finite or
    /// otherwise impossible values: this one is rendered as the venue renders a real price.
    pub fn set_price(&self, price: f64) {
        self.shared.price_bits.store(price.to_bits(), Ordering::Relaxed);
    }

    /// The BTC-USD price.
    pub fn price(&self) -> f64 {
        f64::from_bits(self.shared.price_bits.load(Ordering::Relaxed))
    }

    /// Sets `pair`'s own price (BTC-USD: as [`Self::set_price`]).
    pub fn set_pair_price(&self, pair: &Pair, price: f64) {
        if *pair == Pair::seed() {
            self.set_price(price);
        } else {
            self.shared.pair_prices.set(pair, price);
        }
    }

    /// `pair`'s price, without noise: its own, or its level from BTC-USD.
    pub fn pair_price(&self, pair: &Pair) -> f64 {
        self.shared.pair_prices.get(pair, self.price())
    }

    /// Moves each answer's price by a uniform random fraction in `[-relative, relative]`, like a
    /// live book between two polls. 0 (the default) keeps answers exactly at [`Self::price`].
    pub fn set_noise(&self, relative: f64) {
        let relative = if relative.is_finite() { relative.abs() } else { 0.0 };
        self.shared.noise_bits.store(relative.to_bits(), Ordering::Relaxed);
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        self.shared.behaviour.send_replace(behaviour);
    }

    pub fn behaviour(&self) -> Behaviour {
        self.shared.behaviour.borrow().clone()
    }

    /// Requests received so far, whatever the behaviour, path or method.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// The most requests that were ever being answered at the same time.
    pub fn max_concurrent_requests(&self) -> u64 {
        self.shared.max_active.load(Ordering::Relaxed)
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        // Stops the accept loop and releases every hanging request; the task ends by itself.
        self.shared.shutdown.send_replace(true);
    }
}

impl fmt::Debug for StandIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandIn").field("venue", &self.venue()).field("addr", &self.addr).finish()
    }
}

/// `coinbase=http://127.0.0.1:9001,kraken=http://...` for `SOURCE_URLS`.
pub fn source_urls(stand_ins: &[StandIn]) -> String {
    let pairs: Vec<String> = stand_ins.iter().map(|s| format!("{}={}", s.venue().name(), s.base_url())).collect();
    pairs.join(",")
}

/// Resolves once `shutdown` is set (or its sender is gone).
fn stopped(shutdown: &watch::Sender<bool>) -> impl Future<Output = ()> + Send + 'static {
    let mut receiver = shutdown.subscribe();
    async move {
        // An error means the sender is gone, which is a shutdown too.
        let _ = receiver.wait_for(|stop| *stop).await;
    }
}
