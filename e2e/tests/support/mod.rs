//! `Pipeline`: the whole system on loopback for one test: a real nats-server, exchange stand-ins,
//! and publisher, aggregator and frontends running in-process, each stoppable on its own.

#![allow(dead_code)]

pub mod chart;

use std::net::SocketAddr;
use std::time::Duration;

use aggregator::AggregatorConfig;
use clap::Parser;
use exchange_standin::{StandIn, Venue, source_urls};
use frontend::{App, FrontendConfig};
use futures::StreamExt;
use publisher::PublisherConfig;
use serde_json::Value;
use testkit::{NatsServer, wait_for};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const DEADLINE: Duration = Duration::from_secs(30);
/// Round length in tests: fast, and still slot-aligned like production.
pub const POLL_INTERVAL: &str = "200ms";

/// A running service: its own shutdown token and task.
pub struct Service {
    shutdown: CancellationToken,
    task: JoinHandle<()>,
    /// The service's own task, when `task` only waits for it.
    service_task: Option<tokio::task::AbortHandle>,
    /// Base URL of the ops port: /metrics, /liveness, /readiness.
    pub ops_url: String,
}

impl Service {
    fn spawn<F>(shutdown: CancellationToken, future: F) -> Self
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        Self { shutdown, task: tokio::spawn(future), service_task: None, ops_url: String::new() }
    }

    /// Requests shutdown without waiting.
    pub fn cancel(&self) {
        self.shutdown.cancel();
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Graceful stop: cancel and wait for the task to finish.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(DEADLINE, self.task).await;
    }

    /// Crash: the task is dropped mid-flight, with no flush and no ack.
    pub fn kill(self) {
        if let Some(service) = &self.service_task {
            service.abort();
        }
        self.task.abort();
    }
}

pub struct Pipeline {
    pub nats: NatsServer,
    pub stand_ins: Vec<StandIn>,
    pub http: reqwest::Client,
    /// The test's own NATS user when the server has users (the chart's admin): (user, password).
    pub admin: Option<(String, String)>,
}

impl Pipeline {
    /// nats-server plus one stand-in per `(venue, price)`.
    pub async fn start(venues: &[(Venue, f64)]) -> Self {
        Self::start_with_nats(NatsServer::start(), venues).await
    }

    pub async fn start_with_nats(nats: NatsServer, venues: &[(Venue, f64)]) -> Self {
        let mut stand_ins = Vec::new();
        for &(venue, price) in venues {
            stand_ins.push(StandIn::start(venue, price).await.expect("stand-in starts"));
        }
        Self { nats, stand_ins, http: reqwest::Client::new(), admin: None }
    }

    pub fn stand_in(&self, venue: Venue) -> &StandIn {
        self.stand_ins.iter().find(|s| s.venue() == venue).expect("stand-in for venue")
    }

    fn sources(&self) -> String {
        self.stand_ins.iter().map(|s| s.venue().name()).collect::<Vec<_>>().join(",")
    }

    /// The publisher's test settings; a flag in `extra` replaces the test's default for it.
    pub fn publisher_config(&self, ops_addr: &str, extra: &[&str]) -> PublisherConfig {
        let mut args = vec![
            "publisher".to_string(),
            "--nats-url".into(),
            self.nats.url(),
            "--sources".into(),
            self.sources(),
            "--source-urls".into(),
            source_urls(&self.stand_ins),
            "--ops-addr".into(),
            ops_addr.into(),
        ];
        // BTC-USD only: these tests follow the seed pair through the aggregator and the frontends,
        // and read back (and recompute the state from) every tick in the stream, whatever its pair.
        let defaults = [
            ("--poll-interval", POLL_INTERVAL),
            ("--request-timeout", "500ms"),
            ("--quorum", "2"),
            ("--pairs", "BTC-USD"),
        ];
        for (flag, value) in defaults {
            if !extra.contains(&flag) {
                args.extend([flag.to_string(), value.to_string()]);
            }
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        PublisherConfig::try_parse_from(args).expect("publisher config")
    }

    /// Starts a publisher in this process, its ops port on a port the system picks.
    pub async fn start_publisher(&self, extra: &[&str]) -> Service {
        let config = self.publisher_config("127.0.0.1:0", extra);
        let shutdown = CancellationToken::new();
        let running = publisher::start(config, shutdown.clone()).await.expect("publisher starts");
        let (ops_addr, service_task) = (running.ops_addr, running.abort_handle());
        let mut service = Service::spawn(shutdown, async move {
            running.wait().await.expect("publisher runs");
        });
        service.service_task = Some(service_task);
        service.ops_url = format!("http://{ops_addr}");
        service
    }

    pub async fn start_aggregator(&self, consumer_name: &str) -> Service {
        self.start_aggregator_with(consumer_name, &[]).await
    }

    /// Starts an aggregator in this process, its ops port on a port the system picks.
    pub async fn start_aggregator_with(&self, consumer_name: &str, extra: &[&str]) -> Service {
        let url = self.nats.url();
        let mut args =
            vec!["aggregator", "--nats-url", &url, "--consumer-name", consumer_name, "--ops-addr", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let config = AggregatorConfig::try_parse_from(args).expect("aggregator config");
        let shutdown = CancellationToken::new();
        let running = aggregator::start(config, shutdown.clone()).await.expect("aggregator starts");
        let (ops_addr, service_task) = (running.ops_addr, running.abort_handle());
        let mut service = Service::spawn(shutdown, async move {
            running.wait().await.expect("aggregator runs");
        });
        service.service_task = Some(service_task);
        service.ops_url = format!("http://{ops_addr}");
        service
    }

    /// Starts a frontend on loopback port 0 and returns its base URL (the port it was given).
    pub async fn start_frontend(&self, app: App) -> (String, Service) {
        self.start_frontend_with(app, &[]).await
    }

    pub async fn start_frontend_with(&self, app: App, extra: &[&str]) -> (String, Service) {
        let url = self.nats.url();
        let mut args = vec![app.name(), "--listen-addr", "127.0.0.1:0"];
        if !extra.contains(&"--nats-url") {
            args.extend(["--nats-url", &url]);
        }
        if !extra.contains(&"--ops-addr") {
            args.extend(["--ops-addr", "127.0.0.1:0"]);
        }
        args.extend_from_slice(extra);
        let config = FrontendConfig::try_parse_from(args).expect("frontend config");
        let shutdown = CancellationToken::new();
        let running = frontend::start(app, config, shutdown.clone()).await.expect("frontend starts");
        let (addr, ops_addr): (SocketAddr, SocketAddr) = (running.addr, running.ops_addr);
        let mut service = Service::spawn(shutdown, async move {
            running.wait().await.expect("frontend serves");
        });
        service.ops_url = format!("http://{ops_addr}");
        (format!("http://{addr}"), service)
    }

    /// GET `url` and return the status and the JSON body (Null if not JSON).
    pub async fn get(&self, url: &str) -> (u16, Value) {
        match self.http.get(url).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.json::<Value>().await.unwrap_or(Value::Null);
                (status, body)
            }
            Err(_) => (0, Value::Null),
        }
    }

    /// Polls `url` until it answers 200 with a body that `accept` likes; returns that body.
    pub async fn wait_for_body(&self, url: &str, what: &str, accept: impl Fn(&Value) -> bool) -> Value {
        wait_for(what, DEADLINE, || async {
            let (status, body) = self.get(url).await;
            (status == 200 && accept(&body)).then_some(body)
        })
        .await
    }

    /// GET `url` as text: (status, body).
    /// The value of the sample `name` (with its labels, as exposed) on the `/metrics` of the
    /// ops port at `ops_url`.
    pub async fn metric(&self, ops_url: &str, name: &str) -> Option<f64> {
        let (status, text) = self.get_text(&format!("{ops_url}/metrics")).await;
        if status != 200 {
            return None;
        }
        text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    pub async fn get_text(&self, url: &str) -> (u16, String) {
        match self.http.get(url).send().await {
            Ok(response) => (response.status().as_u16(), response.text().await.unwrap_or_default()),
            Err(_) => (0, String::new()),
        }
    }

    /// The test connects as `user` (a server with the chart's users: the admin).
    pub fn with_admin(mut self, user: &str, password: &str) -> Self {
        self.admin = Some((user.to_string(), password.to_string()));
        self
    }

    /// A JetStream context on the test's server.
    pub async fn jetstream(&self) -> async_nats::jetstream::Context {
        let options = match &self.admin {
            Some((user, password)) => {
                async_nats::ConnectOptions::with_user_and_password(user.clone(), password.clone())
            }
            None => async_nats::ConnectOptions::new(),
        };
        let client = options.connect(self.nats.url()).await.expect("test client connects");
        async_nats::jetstream::new(client)
    }
}

/// Names of the sources of a `/btc/USD` body with the given status.
pub fn sources_with_status(body: &Value, status: &str) -> Vec<String> {
    let mut names: Vec<String> = body["sources"]
        .as_array()
        .map(|sources| {
            sources
                .iter()
                .filter(|s| s["status"] == status)
                .filter_map(|s| s["source"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A message of the ticks stream as stored.
pub struct Stored {
    pub sequence: u64,
    pub stored_at: chrono::DateTime<chrono::Utc>,
    pub payload: bytes::Bytes,
}

/// Every BTC-USD tick message in the ticks stream, read with an ordered consumer.
pub async fn read_stored(js: &async_nats::jetstream::Context) -> Vec<Stored> {
    read_stored_of(js, &btc_contract::Pair::seed()).await
}

/// Every tick message of `pair` in the ticks stream, read with an ordered consumer.
pub async fn read_stored_of(js: &async_nats::jetstream::Context, pair: &btc_contract::Pair) -> Vec<Stored> {
    let stream = js.get_stream(btc_contract::names::TICKS_STREAM).await.expect("ticks stream");
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
            filter_subject: pair.ticks_subject(),
            ..Default::default()
        })
        .await
        .expect("ordered consumer");
    let total = consumer.cached_info().num_pending as usize;
    if total == 0 {
        return Vec::new();
    }
    let mut messages = consumer.messages().await.expect("messages").take(total);
    let mut stored = Vec::new();
    while let Some(message) = messages.next().await {
        let message = message.expect("message");
        let info = message.info().expect("message info");
        stored.push(Stored {
            sequence: info.stream_sequence,
            stored_at: info.published,
            payload: message.payload.clone(),
        });
    }
    stored
}

/// Every BTC-USD tick in the stream.
pub async fn read_ticks(js: &async_nats::jetstream::Context) -> Vec<btc_contract::Tick> {
    read_stored(js).await.iter().map(|m| btc_contract::Tick::decode(&m.payload).expect("tick decodes")).collect()
}

/// The BTC-USD state a new aggregator with the default settings computes from everything in the
/// stream, in stream order: what every aggregator's state must equal.
pub async fn recompute_state(js: &async_nats::jetstream::Context) -> btc_contract::PriceState {
    recompute_state_of(js, &btc_contract::Pair::seed()).await
}

/// The state of `pair` a new aggregator with the default settings computes from the stream.
pub async fn recompute_state_of(
    js: &async_nats::jetstream::Context,
    pair: &btc_contract::Pair,
) -> btc_contract::PriceState {
    let created = js.get_stream(btc_contract::names::TICKS_STREAM).await.expect("ticks stream").cached_info().created;
    let rules = AggregatorConfig::try_parse_from(["aggregator"]).expect("default config").rules();
    let mut recomputed = aggregator::state::Aggregate::for_stream(pair.clone(), rules, created);
    for message in read_stored_of(js, pair).await {
        recomputed.ingest(message.sequence, &message.payload, message.stored_at);
    }
    recomputed.state().expect("a state")
}

/// BTC-USD ticks in the stream.
pub async fn count_ticks(js: &async_nats::jetstream::Context) -> usize {
    let Ok(stream) = js.get_stream(btc_contract::names::TICKS_STREAM).await else { return 0 };
    let Ok(mut info) = stream.info_with_subjects(btc_contract::names::TICK_SUBJECT).await else { return 0 };
    match info.next().await {
        Some(Ok((_, count))) => count,
        _ => 0,
    }
}

pub async fn tick_times(js: &async_nats::jetstream::Context) -> Vec<i64> {
    read_ticks(js).await.iter().map(|t| t.time.timestamp_millis()).collect()
}

/// A tick of `pair` at `time_ms` with one used kraken quote: for tests that publish ticks
/// themselves.
pub fn tick_at(pair: &btc_contract::Pair, time_ms: i64, price: f64) -> btc_contract::Tick {
    use btc_contract::{Dispersion, QuoteStatus, SourceQuote};
    let time = chrono::DateTime::from_timestamp_millis(time_ms).unwrap_or_default();
    btc_contract::Tick {
        schema_version: btc_contract::SCHEMA_VERSION,
        pair: pair.to_string(),
        time,
        oldest_quote_time: Some(time),
        price,
        dispersion: Dispersion { low: price, high: price, std_dev: 0.0, used: 3 },
        sources: vec![SourceQuote { source: "kraken".into(), price, quote_time: time, status: QuoteStatus::Used }],
    }
}
