//! A NATS subscriber that prints the pipeline's ticks, built on the contract crate alone (plus a
//! NATS client): what a program of your own that reads prices needs.
//!
//! ```text
//! cargo run -p btc-contract --example print_ticks -- [NATS_URL] [COUNT]
//! ```
//!
//! `NATS_URL` defaults to the `NATS_URL` variable, then `nats://127.0.0.1:4222`; with `COUNT` it
//! exits after that many ticks. A plain subscription sees every tick from now on; to read the
//! history as well, bind a JetStream consumer to [`names::TICKS_STREAM`] instead. A server that
//! asks for credentials takes them through `async_nats::ConnectOptions` (user and password, a
//! `.creds` file, TLS client certificates).

use btc_contract::{Tick, names};
use futures::StreamExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url =
        args.next().or_else(|| std::env::var("NATS_URL").ok()).unwrap_or_else(|| "nats://127.0.0.1:4222".to_string());
    let count: Option<usize> = args.next().map(|n| n.parse()).transpose()?;

    let client = async_nats::connect(&url).await?;
    let mut ticks = client.subscribe(names::TICK_SUBJECT).await?;
    // The subscription is registered once the server has seen it: flush, then say so, so that a
    // caller (the end-to-end test) knows from here on no tick is missed.
    client.flush().await?;
    eprintln!("subscribed to {} on {url}", names::TICK_SUBJECT);

    let mut seen = 0;
    while let Some(message) = ticks.next().await {
        // `decode` refuses schema versions this build does not know and impossible prices,
        // rather than misread them.
        match Tick::decode(&message.payload) {
            Ok(tick) => {
                let sources: Vec<&str> = tick.sources.iter().map(|s| s.source.as_str()).collect();
                println!("{} {} {:.2} sources={}", tick.time.to_rfc3339(), tick.pair, tick.price, sources.join(","));
            }
            Err(error) => eprintln!("skipping a message on {}: {error}", message.subject),
        }
        seen += 1;
        if count.is_some_and(|count| seen >= count) {
            break;
        }
    }
    Ok(())
}
