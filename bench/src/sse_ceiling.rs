//! The fan-out ceiling for `make bench`: a bare hyper server that pushes BTC-USD's Server-Sent
//! Events to every client of any path, as soon as it sees a state update through a KV watch, and
//! does nothing else: no replay, no limit, no read of the tick from the ticks stream (it takes the
//! state's own copy). The events are bitcoin-api's own bytes (`frontend::feeds::FeedEvent`: a
//! `price` then an `average` per state), so the two servers send the same clients the same bytes.
//!
//! Usage: NATS_URL=nats://... sse-ceiling <listen addr>. Logs `listening addr=...` on stderr.

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::Context as _;
use async_nats::jetstream::{self, kv};
use btc_contract::{Pair, PriceState};
use btc_runtime::nats::NatsArgs;
use bytes::Bytes;
use frontend::feeds::FeedEvent;
use futures::StreamExt;
use http_body_util::StreamBody;
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, header};
use hyper_util::rt::TokioIo;
use tokio::sync::broadcast;

/// Events a client may fall behind before it is dropped: bitcoin-api's bound.
const CLIENT_BUFFER: usize = frontend::feeds::CLIENT_BUFFER;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr: SocketAddr =
        std::env::args().nth(1).context("usage: sse-ceiling <listen addr>")?.parse().context("listen address")?;
    let url = std::env::var("NATS_URL").context("NATS_URL")?;
    let client = NatsArgs::local(url).connect("sse-ceiling").await?;
    let bucket = btc_runtime::jetstream::open_state_bucket(&jetstream::new(client)).await?;
    let (events, _) = broadcast::channel::<Bytes>(CLIENT_BUFFER);
    let updates = bucket.watch(Pair::seed().state_key()).await.context("watching the state")?;
    tokio::spawn(broadcast_states(updates, events.clone()));

    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("listening addr={}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let events = events.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_: Request<Incoming>| {
                let body = StreamBody::new(client_events(events.subscribe()));
                let mut response = Response::new(body);
                let headers = response.headers_mut();
                headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/event-stream"));
                headers.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

/// Each state's `price` and `average` events, to every client.
async fn broadcast_states(mut updates: kv::Watch, events: broadcast::Sender<Bytes>) {
    while let Some(Ok(entry)) = updates.next().await {
        let Ok(state) = PriceState::decode(&entry.value) else { continue };
        let price = FeedEvent::price(state.stream_sequence, &state.latest);
        for event in price.into_iter().chain(FeedEvent::average(&state)) {
            // No client yet is not an error.
            let _ = events.send(event.bytes);
        }
    }
}

/// A client's events as body frames; the body ends when the client falls too far behind.
fn client_events(
    receiver: broadcast::Receiver<Bytes>,
) -> impl futures::Stream<Item = Result<Frame<Bytes>, Infallible>> + Send {
    let retry = futures::stream::once(async { Ok(Frame::data(Bytes::from_static(b"retry: 3000\n\n"))) });
    let live = futures::stream::unfold(receiver, |mut receiver| async move {
        let bytes = receiver.recv().await.ok()?;
        Some((Ok(Frame::data(bytes)), receiver))
    });
    retry.chain(live)
}
