//! No stuck state: whatever is removed from under the running services (the ticks stream, its
//! messages, the state bucket, the aggregator's consumer, NATS itself for longer than every
//! timeout), a correct price and average are served again within seconds of the cause going
//! away, with nothing counted twice. Each test prints the measured recovery time.

mod support;

use std::time::{Duration, Instant};

use btc_contract::names::{STATE_BUCKET, STATE_KEY, TICKS_STREAM};
use btc_runtime::jetstream::ensure_ticks_stream;
use btc_runtime::stream_config::StreamArgs;
use chrono::{DateTime, Utc};
use exchange_standin::Venue;
use frontend::App;
use support::chart::{self, UserFlags};
use support::{DEADLINE, Pipeline, Service};
use testkit::wait_for;

/// Recovery must take at most this long after the cause goes away.
const RECOVERY_BOUND: Duration = Duration::from_secs(10);

/// The pipeline with one publisher, one aggregator and bitcoin-api, serving a price.
async fn running() -> (Pipeline, String, Service, Service, Service) {
    let pipeline =
        Pipeline::start(&[(Venue::Coinbase, 50_000.0), (Venue::Kraken, 50_010.0), (Venue::Bitstamp, 49_990.0)]).await;
    let (api, frontend) = pipeline.start_frontend(App::BitcoinApi).await;
    let publisher = pipeline.start_publisher(&[]).await;
    let aggregator = pipeline.start_aggregator("aggregator").await;
    pipeline.wait_for_body(&format!("{api}/btc/average"), "an average", |b| b["samples"].as_u64() >= Some(3)).await;
    (pipeline, api, publisher, aggregator, frontend)
}

/// The same pipeline under the chart's NATS users: the setup step (admin) made the streams and
/// buckets, and each service runs with its own user, which may not create or change them.
async fn running_under_the_charts_users() -> (Pipeline, String, [Service; 3], [UserFlags; 3]) {
    let nats = testkit::NatsServer::start_with_config(Some(&chart::authorization()));
    chart::run_setup(&nats).await;
    let pipeline = Pipeline::start_with_nats(
        nats,
        &[(Venue::Coinbase, 50_000.0), (Venue::Kraken, 50_010.0), (Venue::Bitstamp, 49_990.0)],
    )
    .await
    .with_admin("admin", chart::password_of("admin"));
    let users = chart::SERVICE_USERS.map(UserFlags::new);
    let [publisher_flags, aggregator_flags, frontend_flags] = &users;
    let (api, frontend) = pipeline.start_frontend_with(App::BitcoinApi, &frontend_flags.with(&[])).await;
    let publisher = pipeline.start_publisher(&publisher_flags.with(&[])).await;
    let aggregator = pipeline.start_aggregator_with("aggregator", &aggregator_flags.with(&[])).await;
    pipeline.wait_for_body(&format!("{api}/btc/average"), "an average", |b| b["samples"].as_u64() >= Some(3)).await;
    (pipeline, api, [publisher, aggregator, frontend], users)
}

/// Waits until bitcoin-api serves a price and an average from ticks made after `since`, and
/// returns how long that took from `cause_gone`.
async fn recovered(pipeline: &Pipeline, api: &str, since: DateTime<Utc>, cause_gone: Instant, what: &str) -> Duration {
    let after = |body: &serde_json::Value, field: &str| {
        body[field].as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok()).is_some_and(|t| t > since)
    };
    pipeline.wait_for_body(&format!("{api}/btc/USD"), "a price made after the fault", |b| after(b, "time")).await;
    pipeline
        .wait_for_body(&format!("{api}/btc/average"), "an average up to a tick after the fault", |b| after(b, "to"))
        .await;
    let took = cause_gone.elapsed();
    println!("{what}: a fresh price and average served {took:.2?} after the cause went away");
    assert!(took <= RECOVERY_BOUND, "{what}: recovery took {took:?}, more than {RECOVERY_BOUND:?}");
    took
}

/// Stops the publisher, waits until the stored state covers every tick in the stream and equals
/// a recomputation from the stream (nothing counted twice, nothing missed, nothing the stream no
/// longer holds), checks bitcoin-api serves it, and that all this came within the bound.
async fn settles_to_a_recomputation(
    pipeline: &Pipeline,
    api: &str,
    publisher: Service,
    cause_gone: Instant,
    what: &str,
) {
    publisher.stop().await;
    let js = pipeline.jetstream().await;
    let last = js.get_stream(TICKS_STREAM).await.expect("ticks stream").cached_info().state.last_sequence;
    let kv = js.get_key_value(STATE_BUCKET).await.expect("state bucket");
    let seen = std::cell::RefCell::new(None);
    let settled = testkit::poll_every(Duration::from_millis(50), DEADLINE, || async {
        let state = btc_contract::PriceState::decode(&kv.get(STATE_KEY).await.ok()??).ok()?;
        let recomputed = support::recompute_state(&js).await;
        *seen.borrow_mut() = Some((state.clone(), recomputed.clone()));
        (state.stream_sequence == last && state == recomputed).then_some(state)
    })
    .await;
    let Some(state) = settled else {
        let (state, recomputed) = seen.into_inner().expect("a state was read");
        panic!("{what}: the state never equalled a recomputation from the stream:\n{state:?}\n{recomputed:?}");
    };
    let took = cause_gone.elapsed();
    println!("{what}: the state equals a recomputation from the stream {took:.2?} after the cause went away");
    assert!(took <= RECOVERY_BOUND, "{what}: a correct state took {took:?}, more than {RECOVERY_BOUND:?}");
    let served = pipeline
        .wait_for_body(&format!("{api}/btc/average"), "the settled average", |b| {
            b["to"].as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map(|t| t.timestamp_millis())
                == Some(state.average.to.timestamp_millis())
        })
        .await;
    assert_eq!(served["time_weighted_average"].as_f64(), Some(state.average.time_weighted));
    assert_eq!(served["samples"].as_u64(), Some(u64::from(state.average.samples)));
}

/// Runs the pipeline, applies `cause`, and checks that it heals within the bound: a fresh price
/// and average served, and a state equal to a recomputation from the stream.
async fn heals_after(what: &str, cause: impl AsyncFnOnce(&mut Pipeline)) {
    let (mut pipeline, api, publisher, _aggregator, _frontend) = running().await;
    let since = Utc::now();
    cause(&mut pipeline).await;
    let cause_gone = Instant::now();
    recovered(&pipeline, &api, since, cause_gone, what).await;
    settles_to_a_recomputation(&pipeline, &api, publisher, cause_gone, what).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ticks_stream_deleted_and_created_again_is_followed_from_its_first_sequence() {
    heals_after("stream deleted and created again", async |pipeline| {
        let js = pipeline.jetstream().await;
        let old = js.get_stream(TICKS_STREAM).await.expect("ticks stream").cached_info().created;
        js.delete_stream(TICKS_STREAM).await.expect("stream deleted");
        let new = ensure_ticks_stream(&js, &StreamArgs::default()).await.expect("stream created again");
        // Sequences start at 1 again; the settled state must name the new stream.
        assert!(new.cached_info().created > old);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_ticks_stream_is_created_again_by_the_services() {
    heals_after("stream deleted", async |pipeline| {
        pipeline.jetstream().await.delete_stream(TICKS_STREAM).await.expect("stream deleted");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purged_stream_leaves_the_window_to_what_the_stream_still_holds() {
    heals_after("stream purged", async |pipeline| {
        let stream = pipeline.jetstream().await.get_stream(TICKS_STREAM).await.expect("ticks stream");
        stream.purge().await.expect("purged");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_state_bucket_is_created_again_and_served() {
    heals_after("state bucket deleted", async |pipeline| {
        pipeline.jetstream().await.delete_key_value(STATE_BUCKET).await.expect("bucket deleted");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_or_expired_aggregator_consumer_is_created_again_from_where_it_stood() {
    // What the server does to a consumer left inactive for `inactive_threshold` (a long partition).
    heals_after("aggregator's consumer deleted", async |pipeline| {
        let stream = pipeline.jetstream().await.get_stream(TICKS_STREAM).await.expect("ticks stream");
        stream.delete_consumer("aggregator").await.expect("consumer deleted");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_down_longer_than_every_timeout_then_back() {
    heals_after("NATS down for 35 s", async |pipeline| {
        pipeline.nats.kill();
        // Longer than the consumer's ack wait and pull expiry (30 s) and the replay stall (10 s).
        tokio::time::sleep(Duration::from_secs(35)).await;
        pipeline.nats.restart();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_publisher_alone_creates_a_deleted_ticks_stream_again() {
    let pipeline =
        Pipeline::start(&[(Venue::Coinbase, 50_000.0), (Venue::Kraken, 50_010.0), (Venue::Bitstamp, 49_990.0)]).await;
    let _publisher = pipeline.start_publisher(&[]).await;
    let js = pipeline.jetstream().await;
    wait_for("3 ticks", DEADLINE, || async { (support::count_ticks(&js).await >= 3).then_some(()) }).await;
    js.delete_stream(TICKS_STREAM).await.expect("stream deleted");
    let deleted = Instant::now();
    wait_for("ticks in a new stream", DEADLINE, || async { (support::count_ticks(&js).await >= 2).then_some(()) })
        .await;
    println!(
        "stream deleted with no aggregator running: the publisher stored ticks again {:.2?} later",
        deleted.elapsed()
    );
    assert!(deleted.elapsed() <= RECOVERY_BOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_charts_users_a_deleted_stream_comes_back_when_the_setup_step_runs_again() {
    let (pipeline, api, [publisher, aggregator, _frontend], _users) = running_under_the_charts_users().await;
    let since = Utc::now();
    pipeline.jetstream().await.delete_stream(TICKS_STREAM).await.expect("stream deleted");
    // The services may not create it: they wait, unready, saying what for.
    for service in [&publisher, &aggregator] {
        let url = format!("{}/readiness", service.ops_url);
        wait_for("a service waiting for the setup step", DEADLINE, || async {
            let (status, body) = pipeline.get_text(&url).await;
            (status == 503 && body.contains("waiting for the setup step")).then_some(())
        })
        .await;
    }
    let js = pipeline.jetstream().await;
    assert!(js.get_stream(TICKS_STREAM).await.is_err(), "a service user created the stream");

    // The setup step runs again (the chart's Job at the next upgrade, or an operator).
    chart::run_setup(&pipeline.nats).await;
    let cause_gone = Instant::now();
    let what = "stream deleted under the chart's users, setup step run again";
    recovered(&pipeline, &api, since, cause_gone, what).await;
    for service in [&publisher, &aggregator] {
        let url = format!("{}/readiness", service.ops_url);
        wait_for("ready again", DEADLINE, || async { (pipeline.get_text(&url).await.0 == 200).then_some(()) }).await;
    }
    settles_to_a_recomputation(&pipeline, &api, publisher, cause_gone, what).await;
}
