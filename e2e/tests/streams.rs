//! The stream route through the whole pipeline: exchange stand-ins -> publisher -> JetStream ->
//! aggregator -> bitcoin-api's feed -> a client reading `GET /btc/USD/stream` over TCP.

mod support;

use std::time::Duration;

use exchange_standin::Venue;
use frontend::App;
use support::Pipeline;
use testkit::sse::{Event, EventReader};

/// Longest wait for the next event: a publisher round is 1 s.
const EVENT_TIMEOUT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_pushes_each_new_price_in_order_and_ends_cleanly_on_shutdown() {
    let venues = [(Venue::Coinbase, 50_000.0), (Venue::Kraken, 50_010.0), (Venue::Bitstamp, 49_990.0)];
    let pipeline = Pipeline::start(&venues).await;
    let (bitcoin_api, api) = pipeline.start_frontend(App::BitcoinApi).await;
    let _publisher = pipeline.start_publisher(&[]).await;
    let _aggregator = pipeline.start_aggregator("aggregator").await;
    pipeline.wait_for_body(&format!("{bitcoin_api}/btc/USD"), "a price", |b| b["price"].is_number()).await;

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

async fn next<S>(events: &mut EventReader<S>) -> Option<Event>
where
    S: futures::Stream<Item = Result<bytes::Bytes, reqwest::Error>> + Unpin,
{
    tokio::time::timeout(EVENT_TIMEOUT, events.next()).await.expect("an event in time")
}
