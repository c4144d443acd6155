//! Local HTTP stand-ins for the exchanges the publisher polls.
//!
//! Each [`StandIn`] serves one venue on its own loopback port and answers in that venue's real,
//! documented format (`shared/exchange-apis.md`), so the publisher's adapters parse it exactly as
//! they parse the exchange. A test can make one venue fail, throttle, hang or lie (see
//! [`Behaviour`]) while the others stay healthy. The `exchange-standin` binary runs all of them
//! with a random-walk price for `make demo`.

use std::fmt;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use poem::http::{Method, StatusCode, header};
use poem::listener::TcpAcceptor;
use poem::{Endpoint, Request, Response, Server};
use tokio::sync::watch;

mod bodies;
mod demo;

pub use bodies::HOSTILE_TEXT;
use demo::XorShift;
pub use demo::{DemoConfig, run, shutdown_signal};

/// Venues, same names as the publisher's `SOURCES` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Venue {
    Coinbase,
    Kraken,
    Bitstamp,
    Gemini,
    Bitfinex,
    BinanceUs,
    Cexio,
    Coingecko,
}

impl Venue {
    pub const ALL: [Venue; 8] = [
        Venue::Coinbase,
        Venue::Kraken,
        Venue::Bitstamp,
        Venue::Gemini,
        Venue::Bitfinex,
        Venue::BinanceUs,
        Venue::Cexio,
        Venue::Coingecko,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Venue::Coinbase => "coinbase",
            Venue::Kraken => "kraken",
            Venue::Bitstamp => "bitstamp",
            Venue::Gemini => "gemini",
            Venue::Bitfinex => "bitfinex",
            Venue::BinanceUs => "binanceus",
            Venue::Cexio => "cexio",
            Venue::Coingecko => "coingecko",
        }
    }

    /// The route the stand-in serves, without the query (which is ignored).
    pub fn path(self) -> &'static str {
        match self {
            Venue::Coinbase => "/v2/prices/BTC-USD/spot",
            Venue::Kraken => "/0/public/Ticker",
            Venue::Bitstamp => "/api/v2/ticker/btcusd/",
            Venue::Gemini => "/v1/pubticker/btcusd",
            Venue::Bitfinex => "/v2/ticker/tBTCUSD",
            Venue::BinanceUs => "/api/v3/ticker/price",
            Venue::Cexio => "/api/last_price/BTC/USD",
            Venue::Coingecko => "/api/v3/simple/price",
        }
    }

    /// The price as this venue shows it: rounded to its tick (Bitstamp whole dollars, Kraken and
    /// cex.io 0.1, Coinbase, Gemini, Binance.US and CoinGecko cents, Bitfinex five significant
    /// digits). Tests compare what the publisher read against this, not against the set price.
    pub fn quoted(self, price: f64) -> f64 {
        bodies::round_to(price, bodies::decimals(self, price))
    }
}

impl fmt::Display for Venue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Venue {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wanted = text.trim().to_ascii_lowercase();
        Venue::ALL.into_iter().find(|venue| venue.name() == wanted).ok_or_else(|| {
            let known: Vec<&str> = Venue::ALL.iter().map(|v| v.name()).collect();
            format!("unknown venue {text:?}; known venues: {}", known.join(", "))
        })
    }
}

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
struct Shared {
    venue: Venue,
    price_bits: AtomicU64,
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
    /// The price for one answer: the set price, moved by the per-request noise if any.
    fn price_now(&self) -> f64 {
        let price = f64::from_bits(self.price_bits.load(Ordering::Relaxed));
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
struct Active<'a>(&'a Shared);

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

    /// Sets the price the next answers show. Use [`Behaviour::RawPrice`] for non-finite or
    /// otherwise impossible values: this one is rendered as the venue renders a real price.
    pub fn set_price(&self, price: f64) {
        self.shared.price_bits.store(price.to_bits(), Ordering::Relaxed);
    }

    pub fn price(&self) -> f64 {
        f64::from_bits(self.shared.price_bits.load(Ordering::Relaxed))
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

struct VenueEndpoint {
    shared: Arc<Shared>,
}

impl Endpoint for VenueEndpoint {
    type Output = Response;

    async fn call(&self, request: Request) -> poem::Result<Response> {
        let shared = &self.shared;
        let count = shared.requests.fetch_add(1, Ordering::Relaxed) + 1;
        let _active = Active::enter(shared);
        let venue = shared.venue;
        tracing::debug!(venue = venue.name(), uri = %request.uri(), count, "request");
        if request.uri().path() != venue.path() {
            return Ok(Response::builder().status(StatusCode::NOT_FOUND).body("not found"));
        }
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return Ok(Response::builder().status(StatusCode::METHOD_NOT_ALLOWED).body("method not allowed"));
        }
        let weight = shared.spend_weight(since_epoch());
        let mut behaviour = shared.behaviour.subscribe();
        let mut shutdown = shared.shutdown.subscribe();
        loop {
            let current = behaviour.borrow_and_update().clone();
            match current {
                Behaviour::Hang => {}
                Behaviour::Delayed { delay_ms } => {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(delay_ms)) => {
                            return Ok(with_weight(venue, weight, &current, answer(shared, &Behaviour::Normal)));
                        }
                        _ = shutdown.wait_for(|stop| *stop) => break,
                    }
                }
                _ => return Ok(with_weight(venue, weight, &current, answer(shared, &current))),
            }
            tokio::select! {
                changed = behaviour.changed() => if changed.is_err() { break },
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
        Ok(Response::builder().status(StatusCode::SERVICE_UNAVAILABLE).body("stand-in shutting down"))
    }
}

fn since_epoch() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// Binance.US reports the weight used this minute on every answer, in the current header and in
/// the older one without the interval.
fn with_weight(venue: Venue, own: u32, behaviour: &Behaviour, mut response: Response) -> Response {
    if venue != Venue::BinanceUs {
        return response;
    }
    let used = match behaviour {
        Behaviour::UsedWeight(used) => *used,
        Behaviour::ThrottledIn200 => BINANCE_WEIGHT_LIMIT,
        _ => own,
    };
    for name in ["x-mbx-used-weight-1m", "x-mbx-used-weight"] {
        response.headers_mut().insert(name, header::HeaderValue::from(used));
    }
    response
}

fn answer(shared: &Shared, behaviour: &Behaviour) -> Response {
    let venue = shared.venue;
    let now = since_epoch();
    let price = shared.price_now();
    let (status, body) = match behaviour {
        Behaviour::Normal | Behaviour::Hang | Behaviour::Delayed { .. } | Behaviour::UsedWeight(_) => {
            (200, bodies::ticker(venue, price, Some(&bodies::price_json(venue, price)), now))
        }
        Behaviour::RawPrice(raw) => (200, bodies::ticker(venue, price, Some(raw), now)),
        Behaviour::MissingField => (200, bodies::ticker(venue, price, None, now)),
        Behaviour::Garbage => {
            // Half a real answer, as a connection cut mid-body delivers it.
            let mut whole = bodies::ticker(venue, price, Some(&bodies::price_json(venue, price)), now).into_bytes();
            whole.truncate(whole.len() / 2);
            return json_response(StatusCode::OK, whole);
        }
        Behaviour::SlowBody { byte_every_ms } => {
            let whole = bodies::ticker(venue, price, Some(&bodies::price_json(venue, price)), now).into_bytes();
            let (mut writer, reader) = tokio::io::duplex(64);
            let pause = std::time::Duration::from_millis(*byte_every_ms);
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                for byte in whole {
                    tokio::time::sleep(pause).await;
                    if writer.write_all(&[byte]).await.is_err() {
                        return;
                    }
                }
            });
            return Response::builder()
                .status(StatusCode::OK)
                .content_type("application/json")
                .body(poem::Body::from_async_read(reader));
        }
        Behaviour::Status(status) => (*status, bodies::error(venue, *status)),
        Behaviour::RateLimited { .. } => (429, bodies::error(venue, 429)),
        Behaviour::ExchangeError => bodies::exchange_error(venue),
        Behaviour::ThrottledIn200 => bodies::throttled(venue, price, now),
        Behaviour::HugeError { body_bytes } => (200, bodies::huge_error(venue, *body_bytes)),
        Behaviour::Redirect { status, location } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::FOUND);
            let mut response = Response::builder().status(status).body(format!("moved to {location}"));
            if let Ok(value) = header::HeaderValue::from_str(location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            return response;
        }
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json_response(status, body.into_bytes());
    if let Behaviour::RateLimited { retry_after_secs } = behaviour {
        response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(*retry_after_secs));
    }
    response
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    Response::builder().status(status).content_type("application/json").body(body)
}
