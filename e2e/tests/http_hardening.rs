//! What anyone on the internet can do to a frontend, tried on the real binaries: made-up methods,
//! paths, header names and query strings must not grow the server's memory (its metric series and
//! its RSS stay where they were); `/metrics` is not on the public port; a client trickling its
//! request head is cut at the head deadline, and h2c (which that deadline cannot follow) is refused.
//!
//! New settings are passed as environment variables, which a binary without them ignores: run
//! against the code before them, these tests fail on what they check, not on an unknown flag.

mod support;

use std::time::Duration;

use futures::StreamExt;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{RngAlgorithm, TestRng, TestRunner};
use testkit::process::ServiceProcess;
use testkit::{NatsServer, wait_for};

/// Hostile requests sent to each app.
const REQUESTS: usize = 10_000;
/// Requests in flight at once.
const CONCURRENCY: usize = 16;
/// Series an app may add while answering them. Every label comes from a fixed set (10 method
/// values, the app's routes, the statuses the server answers), so only the few combinations these
/// requests reach can appear: `other` or a known method, on a known route or `unmatched`, with
/// 404 or 405; each is a counter line and a histogram of 16 lines.
const MAX_NEW_SERIES: usize = 200;
/// RSS an app may gain while answering them, KiB: allocator slack, not a function of the requests.
const MAX_RSS_GROWTH_KIB: u64 = 4 * 1024;

/// The label values a series of `btc_http_*` may carry.
const METHODS: [&str; 10] = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "other"];

const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789-_";
/// Path and query characters, a percent-encoded newline and quote among them.
const URI: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~%0A%22";

/// A token of 1..=`max` characters from `alphabet`.
fn token(alphabet: &'static [u8], max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(alphabet), 1..=max)
        .prop_map(|chars| chars.into_iter().map(char::from).collect())
}

/// One request with a made-up method, path (or a real one), header and query string.
fn hostile(base: &str, real_paths: &[&str]) -> impl Strategy<Value = (reqwest::Method, String, String, String)> {
    let real: Vec<String> = real_paths.iter().map(|path| path.to_string()).collect();
    let made_up = proptest::collection::vec(token(URI, 24), 1..=4)
        .prop_map(|segments| segments.iter().map(|segment| format!("/{segment}")).collect::<String>());
    let path = prop_oneof![proptest::sample::select(real), made_up];
    let query =
        (token(LOWER, 8), token(URI, 16), token(URI, 8)).prop_map(|(key, value, flag)| format!("{key}={value}&{flag}"));
    let base = base.to_string();
    (token(UPPER, 12), path, query, token(LOWER, 16), token(LOWER, 32)).prop_map(
        move |(method, path, query, header, value)| {
            let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a token is a method");
            (method, format!("{base}{path}?{query}"), format!("x-{header}"), value)
        },
    )
}

/// The sample lines of a Prometheus exposition (one per series).
fn series(text: &str) -> Vec<&str> {
    text.lines().filter(|line| !line.starts_with('#') && !line.trim().is_empty()).collect()
}

/// The value of `label` in a sample line, if it has it.
fn label<'a>(line: &'a str, label: &str) -> Option<&'a str> {
    let start = line.find(&format!("{label}=\""))? + label.len() + 2;
    line[start..].split('"').next()
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/<pid>/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// A frontend binary running as a process, with its public and its ops port.
struct Frontend {
    process: ServiceProcess,
    /// `http://<public address>`.
    base: String,
    /// `http://<ops address>`.
    ops: String,
}

impl Frontend {
    async fn spawn(binary: &str, nats: &NatsServer, env: &[(&str, &str)]) -> Self {
        let mut env = env.to_vec();
        // Quiet, but for the `listening` line that says which ports the system gave it.
        env.extend([("OPS_ADDR", "127.0.0.1:0"), ("RUST_LOG", "warn,frontend::server=info")]);
        let nats_url = nats.url();
        let process = ServiceProcess::spawn(binary, &["--nats-url", &nats_url, "--listen-addr", "127.0.0.1:0"], &env);
        let (addr, ops) = (process.listening("addr").await, process.listening("ops_addr").await);
        Self { process, base: format!("http://{addr}"), ops: format!("http://{ops}") }
    }

    /// Waits until the public port answers.
    async fn wait_until_listening(&self, http: &reqwest::Client) {
        wait_for(&format!("{} to answer", self.process.name()), support::DEADLINE, || async {
            http.get(format!("{}/liveness", self.base)).send().await.ok().filter(|r| r.status() == 200).map(|_| ())
        })
        .await;
    }
}

/// One app under hostile traffic: its series and RSS before and after.
struct Measured {
    series: (usize, usize),
    rss_kib: (u64, u64),
    /// Series of `btc_http_*` whose method or route label is none of the fixed values.
    from_the_request: usize,
}

async fn send_hostile_requests(http: &reqwest::Client, base: &str, real_paths: &[&str], seed: u64) {
    // Seeded: the same hostile requests on every run.
    let mut seed_bytes = [0; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
    let mut runner = TestRunner::new_with_rng(ProptestConfig::default(), rng);
    let strategy = hostile(base, real_paths);
    let requests: Vec<_> =
        (0..REQUESTS).map(|_| strategy.new_tree(&mut runner).expect("a request").current()).collect();
    let answered = futures::stream::iter(requests)
        .map(|(method, url, header, value)| async move {
            http.request(method, &url).header(header, value).send().await.map(|r| r.status().as_u16()).unwrap_or(0)
        })
        .buffer_unordered(CONCURRENCY)
        .filter(|status| std::future::ready((400..500).contains(status)))
        .count()
        .await;
    assert_eq!(answered, REQUESTS, "every hostile request gets a 4xx answer");
}

/// Starts `binary`, warms it with ordinary requests, then sends the hostile ones.
async fn measure(binary: &str, nats: &NatsServer, real_paths: &[&str], seed: u64) -> Measured {
    let frontend = Frontend::spawn(binary, nats, &[]).await;
    let pid = frontend.process.pid().expect("pid");
    let base = frontend.base.clone();
    let metrics_url = format!("{}/metrics", frontend.ops);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    frontend.wait_until_listening(&http).await;
    // Ordinary traffic first, so that what is measured is what the hostile requests add.
    for i in 0..200 {
        let path = [real_paths[i % real_paths.len()], "/nothing/here"][i % 2];
        let _ = http.get(format!("{base}{path}")).send().await;
        let _ = http.post(format!("{base}{path}")).send().await;
    }
    let scrape = || async { http.get(&metrics_url).send().await.expect("metrics").text().await.expect("text") };
    let before = series(&scrape().await).len();
    let rss_before = vm_rss_kib(pid);

    send_hostile_requests(&http, &base, real_paths, seed).await;

    let text = scrape().await;
    let after = series(&text);
    let rss_after = vm_rss_kib(pid);
    // The app's own route table (templates such as `/{asset}/{currency}` included), its pages'
    // labels (`/docs`, `/dashboard`) and `unmatched`: the only values a route label may take.
    let app = if binary == "rest-api" { frontend::App::RestApi } else { frontend::App::BitcoinApi };
    let known_routes = [frontend::routes::of(app), frontend::routes::pages(app), &["unmatched"]];
    let from_the_request = after
        .iter()
        .filter(|line| line.starts_with("btc_http_"))
        .filter(|line| {
            let method = label(line, "method").unwrap_or_default();
            let route = label(line, "route").unwrap_or_default();
            !METHODS.contains(&method) || !known_routes.concat().contains(&route)
        })
        .count();
    Measured { series: (before, after.len()), rss_kib: (rss_before, rss_after), from_the_request }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_methods_paths_headers_and_queries_do_not_grow_the_series_or_the_rss() {
    let nats = NatsServer::start();
    let mut failures = Vec::new();
    for (binary, real_paths, seed) in
        [("bitcoin-api", &["/btc/USD", "/btc/average"][..], 0x5eed_0001), ("rest-api", &["/"][..], 0x5eed_0002)]
    {
        let Measured { series: (before, after), rss_kib: (rss_before, rss_after), from_the_request } =
            measure(binary, &nats, real_paths, seed).await;
        println!(
            "{binary}: {REQUESTS} hostile requests: series {before} -> {after} (+{}, {from_the_request} with a \
             label from the request), VmRSS {rss_before} -> {rss_after} KiB (+{})",
            after.saturating_sub(before),
            rss_after.saturating_sub(rss_before)
        );
        if from_the_request > 0 {
            failures.push(format!("{binary}: {from_the_request} series labelled with values from the request"));
        }
        if after > before + MAX_NEW_SERIES {
            failures.push(format!("{binary}: series grew from {before} to {after} (at most +{MAX_NEW_SERIES})"));
        }
        if rss_after > rss_before + MAX_RSS_GROWTH_KIB {
            failures.push(format!(
                "{binary}: VmRSS grew from {rss_before} to {rss_after} KiB (at most +{MAX_RSS_GROWTH_KIB})"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_on_the_ops_port_and_the_public_port_answers_a_json_404() {
    let nats = NatsServer::start();
    let http = reqwest::Client::new();
    for binary in ["bitcoin-api", "rest-api"] {
        let frontend = Frontend::spawn(binary, &nats, &[]).await;
        frontend.wait_until_listening(&http).await;
        let public = http.get(format!("{}/metrics", frontend.base)).send().await.expect("public port answers");
        assert_eq!(public.status(), 404, "{binary}: /metrics on the public port");
        let body: serde_json::Value = public.json().await.expect("a JSON error");
        assert_eq!(body["error"], "not_found", "{binary}: {body}");

        let scrape = http.get(format!("{}/metrics", frontend.ops)).send().await.expect("ops port answers");
        assert_eq!(scrape.status(), 200, "{binary}: /metrics on the ops port");
        let text = scrape.text().await.expect("text");
        assert!(text.contains(&format!("component=\"{binary}\"")), "{binary}: {text}");
        // Requests to the public port are counted and shown on the ops port.
        assert!(text.contains(r#"btc_http_requests_total{method="GET",route="unmatched",status="404"} 1"#), "{text}");
        for (path, status) in [("/liveness", 200), ("/readiness", if binary == "rest-api" { 200 } else { 503 })] {
            let answer = http.get(format!("{}{path}", frontend.ops)).send().await.expect("ops port answers");
            assert_eq!(answer.status(), status, "{binary}: {path} on the ops port");
        }
    }
}

/// Reads `stream` until the server closes it (end of stream or reset); returns what it sent.
async fn closed<R: tokio::io::AsyncRead + Unpin>(stream: &mut R) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut answer = Vec::new();
    let mut buffer = [0u8; 256];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return answer,
            Ok(read) => answer.extend_from_slice(&buffer[..read]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trickling_its_request_head_is_cut_at_the_head_deadline() {
    use tokio::io::AsyncWriteExt;
    const DEADLINE: Duration = Duration::from_secs(2);
    const MARGIN: Duration = Duration::from_millis(750);
    let nats = NatsServer::start();
    let http = reqwest::Client::new();
    for binary in ["bitcoin-api", "rest-api"] {
        let frontend = Frontend::spawn(binary, &nats, &[("HTTP_HEADER_READ_TIMEOUT", "2s")]).await;
        frontend.wait_until_listening(&http).await;
        let addr = frontend.base.trim_start_matches("http://").to_string();
        // Before connecting: the server's deadline starts at its accept, which cannot come earlier.
        let started = tokio::time::Instant::now();
        let (mut read_half, mut write_half) =
            tokio::net::TcpStream::connect(&addr).await.expect("connects").into_split();
        // One byte every 500 ms: each byte resets an idle timer, the head never completes in time.
        let trickle = tokio::spawn(async move {
            for byte in b"GET /liveness HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n\r\n" {
                if write_half.write_all(&[*byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        let answer = tokio::time::timeout(DEADLINE + MARGIN, closed(&mut read_half)).await;
        let elapsed = started.elapsed();
        trickle.abort();
        println!("{binary}: trickling client cut after {elapsed:?} (head deadline {DEADLINE:?})");
        let answer =
            answer.unwrap_or_else(|_| panic!("{binary}: a trickling client still connected after {elapsed:?}"));
        assert!(elapsed >= DEADLINE, "{binary}: cut after {elapsed:?}, before the deadline");
        assert!(
            answer.is_empty(),
            "{binary} answered a head it never received: {:?}",
            String::from_utf8_lossy(&answer)
        );
        // Everyone else is served meanwhile and after.
        assert_eq!(
            http.get(format!("{}/liveness", frontend.base)).send().await.map(|r| r.status().as_u16()).ok(),
            Some(200)
        );

        // h2c, whose frames the deadline cannot follow, is refused at its preface.
        let mut h2c = tokio::net::TcpStream::connect(&addr).await.expect("connects");
        h2c.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.expect("writes the preface");
        let answer = tokio::time::timeout(MARGIN, closed(&mut h2c)).await.expect("h2c closed at once");
        assert!(answer.is_empty(), "{binary} answered h2c: {answer:?}");
    }
}
