//! Batched Direct Get against a real nats-server: batches, the end of batch, the caps, nothing found.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use btc_runtime::direct_batch::{BatchRequest, DirectBatchError, MAX_BATCH, Start, get_batch};
use testkit::NatsServer;

const TIMEOUT: Duration = Duration::from_secs(5);

async fn stream_with(server: &NatsServer, messages: usize) -> async_nats::Client {
    let client = async_nats::connect(server.url()).await.expect("connect");
    let js = jetstream::new(client.clone());
    let config = stream::Config {
        name: "HIST".into(),
        subjects: vec!["hist.>".into()],
        allow_direct: true,
        ..Default::default()
    };
    js.create_stream(config).await.expect("create stream");
    for i in 0..messages {
        // Two subjects interleaved: the reads filter one.
        let subject = if i % 2 == 0 { "hist.a" } else { "hist.b" };
        js.publish(subject, format!("{i}").into()).await.expect("publish").await.expect("ack");
    }
    client
}

#[tokio::test]
async fn a_batch_returns_the_subject_s_messages_in_order_and_ends_with_eob() {
    let server = NatsServer::start();
    let client = stream_with(&server, 20).await;
    let batch = get_batch(&client, &BatchRequest::new("HIST", "hist.a", Start::Sequence(1), 100), TIMEOUT)
        .await
        .expect("batch");
    assert!(batch.ended, "the server said the batch ended");
    let sequences: Vec<u64> = batch.messages.iter().map(|m| m.sequence).collect();
    assert_eq!(sequences, (1..=19).step_by(2).collect::<Vec<u64>>());
    assert!(batch.messages.iter().all(|m| m.subject == "hist.a"));
    assert_eq!(batch.messages[0].payload.as_ref(), b"0");
    assert_eq!(batch.messages.last().and_then(|m| m.pending), Some(0));
}

#[tokio::test]
async fn a_batch_stops_at_what_was_asked_and_continues_by_sequence() {
    let server = NatsServer::start();
    let client = stream_with(&server, 20).await;
    let first =
        get_batch(&client, &BatchRequest::new("HIST", "hist.b", Start::Sequence(1), 3), TIMEOUT).await.expect("first");
    let sequences: Vec<u64> = first.messages.iter().map(|m| m.sequence).collect();
    assert_eq!(sequences, [2, 4, 6]);
    assert_eq!(first.messages[2].pending, Some(7));
    let next =
        get_batch(&client, &BatchRequest::new("HIST", "hist.b", Start::Sequence(7), 3), TIMEOUT).await.expect("next");
    assert_eq!(next.messages.iter().map(|m| m.sequence).collect::<Vec<_>>(), [8, 10, 12]);
}

#[tokio::test]
async fn a_batch_by_start_time_begins_at_the_first_message_stored_then() {
    let server = NatsServer::start();
    let client = stream_with(&server, 6).await;
    let all =
        get_batch(&client, &BatchRequest::new("HIST", "hist.>", Start::Sequence(1), 10), TIMEOUT).await.expect("all");
    let fourth = &all.messages[3];
    let from_time = get_batch(&client, &BatchRequest::new("HIST", "hist.>", Start::Time(fourth.time), 10), TIMEOUT)
        .await
        .expect("from time");
    assert_eq!(from_time.messages.first().map(|m| m.sequence), Some(fourth.sequence));
    let early = chrono::DateTime::UNIX_EPOCH;
    let from_epoch = get_batch(&client, &BatchRequest::new("HIST", "hist.>", Start::Time(early), 10), TIMEOUT)
        .await
        .expect("from the epoch");
    assert_eq!(from_epoch.messages.len(), 6);
}

#[tokio::test]
async fn nothing_found_is_an_empty_ended_batch() {
    let server = NatsServer::start();
    let client = stream_with(&server, 4).await;
    let none = get_batch(&client, &BatchRequest::new("HIST", "hist.c", Start::Sequence(1), 10), TIMEOUT)
        .await
        .expect("nothing");
    assert!(none.ended && none.messages.is_empty());
    let past_end = get_batch(&client, &BatchRequest::new("HIST", "hist.a", Start::Sequence(100), 10), TIMEOUT)
        .await
        .expect("past the end");
    assert!(past_end.ended && past_end.messages.is_empty());
}

#[tokio::test]
async fn a_huge_batch_is_capped_and_a_missing_stream_is_an_error() {
    let server = NatsServer::start();
    let client = stream_with(&server, 2).await;
    let mut request = BatchRequest::new("HIST", "hist.>", Start::Sequence(1), usize::MAX);
    request.max_bytes = usize::MAX;
    let batch = get_batch(&client, &request, TIMEOUT).await.expect("capped");
    assert!(batch.messages.len() <= MAX_BATCH && batch.ended);
    let missing = get_batch(&client, &BatchRequest::new("NOPE", "x", Start::Sequence(1), 1), TIMEOUT).await;
    assert!(matches!(missing, Err(DirectBatchError::NoResponders { .. })), "{missing:?}");
}

#[tokio::test]
async fn max_bytes_bounds_a_batch() {
    let server = NatsServer::start();
    let client = stream_with(&server, 20).await;
    let mut request = BatchRequest::new("HIST", "hist.>", Start::Sequence(1), 20);
    request.max_bytes = 3;
    let batch = get_batch(&client, &request, TIMEOUT).await.expect("bounded");
    assert!(!batch.messages.is_empty() && batch.messages.len() < 20, "{} messages", batch.messages.len());
}
