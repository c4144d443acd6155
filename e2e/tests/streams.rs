//! The stream route through the whole pipeline: exchange stand-ins -> publisher -> JetStream ->
//! aggregator -> bitcoin-api's feed -> a client reading `GET /btc/USD/stream` over TCP.

mod support;

use std::time::Duration;

use exchange_standin::Venue;
use frontend::App;
use support::{Pipeline, Service};
use testkit::sse::{Event, EventReader};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest wait for the next event: a publisher round is 1 s.
const EVENT_TIMEOUT: Duration = Duration::from_secs(15);

/// The whole pipeline over three stand-ins, once bitcoin-api serves a price.
struct Priced {
    pipeline: Pipeline,
    bitcoin_api: String,
    api: Service,
    _publisher: Service,
    _aggregator: Service,
}

impl Priced {
    async fn start() -> Self {
        let venues = [(Venue::Coinbase, 50_000.0), (Venue::Kraken, 50_010.0), (Venue::Bitstamp, 49_990.0)];
        let pipeline = Pipeline::start(&venues).await;
        let (bitcoin_api, api) = pipeline.start_frontend(App::BitcoinApi).await;
        let _publisher = pipeline.start_publisher(&[]).await;
        let _aggregator = pipeline.start_aggregator("aggregator").await;
        pipeline.wait_for_body(&format!("{bitcoin_api}/btc/USD"), "a price", |b| b["price"].is_number()).await;
        Self { pipeline, bitcoin_api, api, _publisher, _aggregator }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_pushes_each_new_price_in_order_and_ends_cleanly_on_shutdown() {
    let Priced { pipeline, bitcoin_api, api, _publisher, _aggregator } = Priced::start().await;

    let response = reqwest::Client::new().get(format!("{bitcoin_api}/btc/USD/stream")).send().await.expect("stream");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string);
    assert_eq!(content_type.as_deref(), Some("text/event-stream"));
    let body = futures::stream::unfold(response, |mut response| async move {
        response.chunk().await.transpose().map(|chunk| (chunk, response))
    });
    let mut events = EventReader::new(Box::pin(body));

    // The price moves twice; the stream shows each new price, its ids rising.
    let mut seen = Vec::new();
    for step in 1..=2 {
        for stand_in in &pipeline.stand_ins {
            stand_in.set_price(stand_in.price() + 1_000.0);
        }
        let wanted = 50_000.0 + 1_000.0 * f64::from(step);
        loop {
            let event = next(&mut events).await.expect("the stream goes on");
            if event.name != "price" {
                continue;
            }
            seen.push(event.sequence().expect("a numeric id"));
            if event.json()["price"] == wanted {
                break;
            }
        }
    }
    assert!(seen.windows(2).all(|pair| pair[0] < pair[1]), "ids rise: {seen:?}");

    // Shutdown (what SIGTERM does): the stream ends, and the server stops within the drain.
    api.cancel();
    while let Some(event) = next(&mut events).await {
        assert!(event.name == "price" || event.name == "average", "{event:?}");
    }
    let stopped = std::time::Instant::now();
    testkit::wait_for("bitcoin-api to stop", Duration::from_secs(12), || async { api.is_finished().then_some(()) })
        .await;
    assert!(stopped.elapsed() < Duration::from_secs(12));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_opened_first_on_a_connection_is_framed_as_http_1_1_and_frees_its_slot_when_the_client_goes() {
    let Priced { pipeline: _pipeline, bitcoin_api, api, _publisher, _aggregator } = Priced::start().await;
    let addr = bitcoin_api.trim_start_matches("http://");

    // A stream as the first request (answered without hyper): the app's status and fields,
    // chunked, closed after; then its events.
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(b"GET /btc/USD/stream HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("request");
    let head = read_until(&mut stream, b"\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    for field in [
        "content-type: text/event-stream",
        "cache-control: no-store",
        "x-content-type-options: nosniff",
        "transfer-encoding: chunked",
        "connection: close",
    ] {
        assert!(head.contains(field), "no {field:?} in {head}");
    }
    let events = head.clone() + &read_until(&mut stream, b"event: price").await;
    assert!(events.contains("\r\nretry: 3000\n\n\r\n"), "{events}");
    let streams_open = |open: u32| {
        let url = format!("{}/metrics", api.ops_url);
        async move {
            let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
            text.contains(&format!("btc_frontend_streams_open {open}\n")).then_some(())
        }
    };
    testkit::wait_for("one stream open", EVENT_TIMEOUT, || streams_open(1)).await;
    drop(stream);
    testkit::wait_for("the stream's slot freed once its client went", EVENT_TIMEOUT, || streams_open(0)).await;

    // An error as the first request: the app's JSON, whole, then the end of the connection.
    let mut unknown = TcpStream::connect(addr).await.expect("connect");
    unknown.write_all(b"GET /doge/USD/stream HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("request");
    let mut answer = Vec::new();
    tokio::time::timeout(EVENT_TIMEOUT, unknown.read_to_end(&mut answer)).await.expect("closed").expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 404 Not Found\r\n") && answer.contains("content-length: "), "{answer}");
    assert!(answer.contains("\"error\":\"unknown_pair\""), "{answer}");

    // Another request first: hyper answers it, and then a stream on the same connection.
    let mut kept = TcpStream::connect(addr).await.expect("connect");
    kept.write_all(b"GET /pairs HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("request");
    let first = read_until(&mut kept, b"]}").await;
    assert!(first.starts_with("HTTP/1.1 200 OK\r\n") && first.contains("BTC-USD"), "{first}");
    kept.write_all(b"GET /btc/USD/stream HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("request");
    let second = read_until(&mut kept, b"event: price").await;
    assert!(second.starts_with("HTTP/1.1 200 OK\r\n") && second.contains("text/event-stream"), "{second}");
}

/// Reads from `stream` until what was read contains `end`.
async fn read_until(stream: &mut TcpStream, end: &[u8]) -> String {
    let mut read = Vec::new();
    let mut buffer = [0u8; 4096];
    while !read.windows(end.len()).any(|window| window == end) {
        let n =
            tokio::time::timeout(EVENT_TIMEOUT, stream.read(&mut buffer)).await.expect("bytes in time").expect("read");
        assert!(
            n > 0,
            "the connection ended before {:?}: {}",
            String::from_utf8_lossy(end),
            String::from_utf8_lossy(&read)
        );
        read.extend_from_slice(&buffer[..n]);
    }
    String::from_utf8_lossy(&read).into_owned()
}

async fn next<S>(events: &mut EventReader<S>) -> Option<Event>
where
    S: futures::Stream<Item = Result<bytes::Bytes, reqwest::Error>> + Unpin,
{
    tokio::time::timeout(EVENT_TIMEOUT, events.next()).await.expect("an event in time")
}
