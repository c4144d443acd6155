//! The NATS users and permissions the chart deploys (`Helm/nats-values.yaml`), enforced by a real
//! nats-server: the setup step (admin) creates the streams and buckets, each service then works
//! with only its own user's permissions, and every operation outside them is refused.

mod support;

use std::fmt;
use std::time::Duration;

use btc_contract::names::{self, CHECKPOINT_BUCKET, LEASE_BUCKET, STATE_BUCKET, TICK_SUBJECT, TICKS_STREAM};
use exchange_standin::Venue;
use frontend::App;
use futures::StreamExt;
use serde_json::{Value, json};
use support::Pipeline;
use support::chart::{self, SERVICE_USERS, UserFlags, password_of};
use testkit::NatsServer;

/// The local stack's NATS users (`deploy/local/nats-auth.conf`, used by `make run`): the chart's
/// block, with the passwords as nats-server variables read from the environment.
fn local_stack_config() -> String {
    let mut json = chart::authorization_json();
    for (variable, _) in chart::PASSWORDS {
        json = json.replace(&format!("\"<< ${variable} >>\""), &format!("${variable}"));
    }
    format!(
        "# Generated from Helm/nats-values.yaml by e2e/tests/authorization.rs: do not edit.\n\
         # Regenerate: UPDATE_LOCAL_NATS_CONF=1 cargo test -p e2e-tests --test authorization\n\
         authorization: {json}\n"
    )
}

#[test]
fn the_local_stack_uses_the_charts_users_and_permissions() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/local/nats-auth.conf");
    let generated = local_stack_config();
    if std::env::var_os("UPDATE_LOCAL_NATS_CONF").is_some() {
        std::fs::write(&path, &generated).expect("write deploy/local/nats-auth.conf");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(committed == generated, "{} differs from Helm/nats-values.yaml; regenerate it", path.display());
}

/// The streams (and KV buckets' streams) of the pipeline.
const STREAMS: [&str; 4] = [TICKS_STREAM, "KV_price_state", "KV_publisher_lease", "KV_window_checkpoint"];
const STATE_SUBJECT: &str = "$KV.price_state.BTC-USD";
const CHECKPOINT_SUBJECT: &str = "$KV.window_checkpoint.BTC-USD";
const LEASE_SUBJECT: &str = "$KV.publisher_lease.BTC-USD";

/// How an operation is tried.
enum Send {
    Publish(String),
    Subscribe(String),
    /// A JetStream API request with its body, waiting for the answer.
    Request(String, Value),
}

/// How its refusal shows.
#[derive(Clone, Copy)]
enum Refusal {
    /// The server's `Permissions Violation` for the subject.
    Permission,
    /// JetStream answers this error code (the permissions let the request through: the server's
    /// own rule is the defence).
    ApiError(u64),
}

struct Op {
    what: String,
    send: Send,
    refusal: Refusal,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let subject = match &self.send {
            Send::Publish(s) | Send::Subscribe(s) | Send::Request(s, _) => s,
        };
        write!(f, "{} ({subject})", self.what)
    }
}

fn api(what: impl Into<String>, subject: impl Into<String>, body: Value) -> Op {
    Op { what: what.into(), send: Send::Request(subject.into(), body), refusal: Refusal::Permission }
}

fn publish(what: impl Into<String>, subject: &str) -> Op {
    Op { what: what.into(), send: Send::Publish(subject.into()), refusal: Refusal::Permission }
}

fn subscribe(what: impl Into<String>, subject: &str) -> Op {
    Op { what: what.into(), send: Send::Subscribe(subject.into()), refusal: Refusal::Permission }
}

/// A push consumer on `stream` delivering to `deliver` (legacy ephemeral form, or named with
/// `filter`): the server would publish the stream's messages there on the creator's behalf.
fn push_consumer(stream: &str, named: Option<&str>, deliver: &str) -> Op {
    let mut config = json!({"deliver_subject": deliver, "deliver_policy": "all", "ack_policy": "none"});
    let subject = match named {
        Some(filter) => {
            config["name"] = json!("evil");
            config["filter_subject"] = json!(filter);
            format!("$JS.API.CONSUMER.CREATE.{stream}.evil.{filter}")
        }
        None => format!("$JS.API.CONSUMER.CREATE.{stream}"),
    };
    api(
        format!("push consumer on {stream} delivering to {deliver}"),
        subject,
        json!({"stream_name": stream, "config": config}),
    )
}

/// A durable consumer on `stream` created through the named form of the API.
fn durable_named(stream: &str, filter: &str) -> Op {
    let config = json!({"durable_name": "evil", "name": "evil", "filter_subject": filter, "ack_policy": "explicit"});
    api(
        format!("durable consumer on {stream}"),
        format!("$JS.API.CONSUMER.CREATE.{stream}.evil.{filter}"),
        json!({"stream_name": stream, "config": config}),
    )
}

/// Every operation on the streams and buckets that belongs to the setup step or to operators.
fn administration() -> Vec<Op> {
    let mut ops =
        vec![api("stream create", "$JS.API.STREAM.CREATE.EVIL", json!({"name": "EVIL", "subjects": ["_INBOX.>"]}))];
    for stream in STREAMS {
        ops.push(api(format!("{stream} update"), format!("$JS.API.STREAM.UPDATE.{stream}"), json!({"name": stream})));
        ops.push(api(format!("{stream} purge"), format!("$JS.API.STREAM.PURGE.{stream}"), json!({})));
        ops.push(api(format!("{stream} delete"), format!("$JS.API.STREAM.DELETE.{stream}"), json!({})));
        ops.push(api(
            format!("{stream} message delete"),
            format!("$JS.API.STREAM.MSG.DELETE.{stream}"),
            json!({"seq": 1}),
        ));
        ops.push(api(
            format!("legacy durable consumer on {stream}"),
            format!("$JS.API.CONSUMER.DURABLE.CREATE.{stream}.evil"),
            json!({"stream_name": stream, "config": {"durable_name": "evil", "ack_policy": "explicit"}}),
        ));
    }
    ops.push(api("consumer delete", format!("$JS.API.CONSUMER.DELETE.{TICKS_STREAM}.aggregator"), json!({})));
    ops.push(api("consumer delete", "$JS.API.CONSUMER.DELETE.KV_price_state.watcher", json!({})));
    ops.push(api("consumer delete", "$JS.API.CONSUMER.DELETE.KV_publisher_lease.watcher", json!({})));
    ops.push(durable_named("KV_price_state", STATE_SUBJECT));
    ops.push(durable_named("KV_publisher_lease", LEASE_SUBJECT));
    ops
}

/// Reading another user's replies, or any inbox at all.
fn other_inboxes(user: &str) -> Vec<Op> {
    let mut ops = vec![subscribe("every inbox", "_INBOX.>")];
    for other in SERVICE_USERS.iter().filter(|other| **other != user) {
        ops.push(subscribe(format!("{other}'s inbox"), &format!("_INBOX_{other}.>")));
    }
    ops
}

/// What `user` must not do: administration, other services' subjects, other inboxes, and push
/// consumers that would make the server publish into the ticks.
fn forbidden_operations(user: &str) -> Vec<Op> {
    let mut ops = administration();
    ops.extend(other_inboxes(user));
    for stream in STREAMS {
        let op = push_consumer(stream, None, TICK_SUBJECT);
        // The aggregator may create consumers on the ticks: JetStream refuses a delivery into the
        // stream's own subjects as a cycle.
        let cycle = user == "aggregator" && stream == TICKS_STREAM;
        ops.push(if cycle { Op { refusal: Refusal::ApiError(10081), ..op } } else { op });
    }
    let state_get = format!("$JS.API.DIRECT.GET.KV_price_state.{STATE_SUBJECT}");
    let lease_get = format!("$JS.API.DIRECT.GET.KV_publisher_lease.{LEASE_SUBJECT}");
    let checkpoint_get = format!("$JS.API.DIRECT.GET.KV_window_checkpoint.{CHECKPOINT_SUBJECT}");
    let pull_ticks = format!("$JS.API.CONSUMER.MSG.NEXT.{TICKS_STREAM}.aggregator");
    match user {
        "publisher" => ops.extend([
            publish("write the state", STATE_SUBJECT),
            publish("ack the aggregator's ticks", "$JS.ACK.PRICES.aggregator.1.1.1.1.1"),
            api("read the state", state_get, json!({})),
            api("pull ticks", pull_ticks, json!({"batch": 1})),
            durable_named(TICKS_STREAM, TICK_SUBJECT),
            publish("write a window checkpoint", CHECKPOINT_SUBJECT),
            api("read a window checkpoint", checkpoint_get, json!({})),
        ]),
        "aggregator" => ops.extend([
            publish("publish a tick", TICK_SUBJECT),
            publish("write the lease", LEASE_SUBJECT),
            api("read the lease", lease_get, json!({})),
            subscribe("watch the lease", "$KV.publisher_lease.>"),
            // Its consumer-create permission lets these through; JetStream refuses them itself.
            Op { refusal: Refusal::ApiError(10081), ..push_consumer(TICKS_STREAM, Some(TICK_SUBJECT), TICK_SUBJECT) },
            Op {
                refusal: Refusal::ApiError(10020),
                ..api(
                    "durable consumer through the ephemeral form",
                    format!("$JS.API.CONSUMER.CREATE.{TICKS_STREAM}"),
                    json!({"stream_name": TICKS_STREAM, "config": {"durable_name": "evil", "ack_policy": "explicit"}}),
                )
            },
        ]),
        _ => ops.extend([
            publish("publish a tick", TICK_SUBJECT),
            publish("write the state", STATE_SUBJECT),
            publish("write the lease", LEASE_SUBJECT),
            publish("ack the aggregator's ticks", "$JS.ACK.PRICES.aggregator.1.1.1.1.1"),
            api("read the lease", lease_get, json!({})),
            api("pull ticks", pull_ticks, json!({"batch": 1})),
            api("ephemeral consumer on the state", "$JS.API.CONSUMER.CREATE.KV_price_state", json!({})),
            subscribe("read the ticks", "prices.ticks.>"),
            subscribe("watch the lease", "$KV.publisher_lease.>"),
            durable_named(TICKS_STREAM, TICK_SUBJECT),
            publish("write a window checkpoint", CHECKPOINT_SUBJECT),
            api("read a window checkpoint", checkpoint_get, json!({})),
            subscribe("watch the window checkpoints", "$KV.window_checkpoint.>"),
        ]),
    }
    // Only the stream's own ticks consumer is the aggregator's business.
    if user != "aggregator" {
        ops.push(push_consumer(TICKS_STREAM, Some(TICK_SUBJECT), TICK_SUBJECT));
    }
    ops
}

/// A service user's connection that records the server's error messages.
struct Probe {
    client: async_nats::Client,
    errors: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl Probe {
    async fn connect(nats: &NatsServer, user: &str) -> Self {
        let (sender, errors) = tokio::sync::mpsc::unbounded_channel();
        let client = async_nats::ConnectOptions::with_user_and_password(user.into(), password_of(user).into())
            .custom_inbox_prefix(format!("_INBOX_{user}"))
            .event_callback(move |event| {
                let sender = sender.clone();
                async move {
                    if let async_nats::Event::ServerError(async_nats::ServerError::Other(message)) = event {
                        let _ = sender.send(message);
                    }
                }
            })
            .connect(nats.url())
            .await
            .expect("a service user connects");
        Self { client, errors }
    }

    /// Tries `op` and says whether it was refused the way the table says.
    async fn refuses(&mut self, op: &Op) -> Result<(), String> {
        while self.errors.try_recv().is_ok() {}
        match (&op.send, op.refusal) {
            (Send::Publish(subject), _) => {
                let _ = self.client.publish(subject.clone(), "{}".into()).await;
                self.violation("Publish", subject).await
            }
            (Send::Subscribe(subject), _) => {
                let _subscription = self.client.subscribe(subject.clone()).await;
                self.violation("Subscription", subject).await
            }
            (Send::Request(subject, body), Refusal::Permission) => {
                let _ = self.client.publish(subject.clone(), body.to_string().into()).await;
                self.violation("Publish", subject).await
            }
            (Send::Request(subject, body), Refusal::ApiError(code)) => {
                let request = self.client.request(subject.clone(), body.to_string().into());
                let answer = tokio::time::timeout(Duration::from_secs(3), request).await;
                let answer = answer.map_err(|_| "no answer".to_string())?.map_err(|e| e.to_string())?;
                let answer: Value = serde_json::from_slice(&answer.payload).unwrap_or_default();
                match answer["error"]["err_code"].as_u64() {
                    Some(got) if got == code => Ok(()),
                    _ => Err(format!("answered {answer}")),
                }
            }
        }
    }

    /// Waits for the server's `Permissions Violation for <kind> to "<subject>"`.
    async fn violation(&mut self, kind: &str, subject: &str) -> Result<(), String> {
        let _ = self.client.flush().await;
        let expected = format!("Permissions Violation for {kind} to \"{subject}\"");
        let wait = async {
            while let Some(message) = self.errors.recv().await {
                if message.contains(&expected) {
                    return true;
                }
            }
            false
        };
        match tokio::time::timeout(Duration::from_secs(2), wait).await {
            Ok(true) => Ok(()),
            _ => Err("no permissions violation".into()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_forbidden_operation_is_refused_for_every_user() {
    let nats = NatsServer::start_with_config(Some(&chart::authorization()));
    chart::run_setup(&nats).await;
    let admin = chart::admin(&nats).await;
    let js = async_nats::jetstream::new(admin.clone());
    // What a service could damage: the aggregator's durable consumer, and a literal subscriber on
    // the tick subject (with one, a push consumer delivering there would be stored in the stream).
    let ticks = js.get_stream(TICKS_STREAM).await.expect("the setup step made the stream");
    ticks
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("aggregator".into()),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut listener = admin.subscribe(TICK_SUBJECT).await.expect("subscribe");
    admin.flush().await.expect("flush");

    let mut done = Vec::new();
    let mut refused = 0;
    for user in SERVICE_USERS {
        let mut probe = Probe::connect(&nats, user).await;
        for op in forbidden_operations(user) {
            match probe.refuses(&op).await {
                Ok(()) => refused += 1,
                Err(outcome) => done.push(format!("{user}: {op}: {outcome}")),
            }
        }
    }
    println!("{refused} forbidden operations tried, each refused");
    assert!(done.is_empty(), "operations a service user must not do went through:\n{}", done.join("\n"));

    let delivered = tokio::time::timeout(Duration::from_millis(500), listener.next()).await;
    assert!(delivered.is_err(), "a message reached the tick subject: {delivered:?}");
    let ticks = js.get_stream(TICKS_STREAM).await.expect("stream");
    assert_eq!(ticks.cached_info().state.messages, 0, "something was stored in the ticks stream");
    for stream in STREAMS {
        assert!(js.get_stream(stream).await.is_ok(), "{stream} is gone");
    }
}

/// The lease entry by a direct get (the request a KV read sends), or None if no answer came.
async fn direct_get_lease(client: &async_nats::Client) -> Option<async_nats::Message> {
    let subject = format!("$JS.API.DIRECT.GET.KV_{LEASE_BUCKET}.{LEASE_SUBJECT}");
    let answer = tokio::time::timeout(Duration::from_secs(2), client.request(subject, "".into())).await;
    answer.ok()?.ok().filter(|message| !message.payload.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_runs_with_its_own_user_after_the_setup_step() {
    let nats = NatsServer::start_with_config(Some(&chart::authorization()));
    // The chart's hook Job, before any service starts: only the admin may create.
    chart::run_setup(&nats).await;
    let pipeline = Pipeline::start_with_nats(
        nats,
        &[(Venue::Coinbase, 70_000.0), (Venue::Kraken, 70_000.0), (Venue::Bitstamp, 70_000.0)],
    )
    .await;
    let [publisher_flags, aggregator_flags, frontend_flags] = SERVICE_USERS.map(UserFlags::new);

    // The whole pipeline works with least privilege: every service with its own user, its
    // password read from a file.
    let (api, _api) = pipeline.start_frontend_with(App::BitcoinApi, &frontend_flags.with(&[])).await;
    let publisher = pipeline.start_publisher(&publisher_flags.with(&[])).await;
    let aggregator = pipeline.start_aggregator_with("aggregator", &aggregator_flags.with(&[])).await;
    pipeline
        .wait_for_body(&format!("{api}/btc/USD"), "a price under least privilege", |b| b["price"] == 70_000.0)
        .await;
    // History under least privilege: the ticks are read by batched direct get, with no consumer.
    let has_ticks = |b: &serde_json::Value| b["ticks"].as_array().is_some_and(|ticks| !ticks.is_empty());
    pipeline.wait_for_body(&format!("{api}/btc/USD/ticks"), "ticks under least privilege", has_ticks).await;
    for (name, service) in [("publisher", &publisher), ("aggregator", &aggregator)] {
        let (status, body) = pipeline.get_text(&format!("{}/readiness", service.ops_url)).await;
        assert_eq!((status, body.as_str()), (200, "OK"), "{name} ready");
    }

    let nats = &pipeline.nats;
    // No credentials, or wrong ones: no connection.
    assert!(async_nats::connect(nats.url()).await.is_err(), "anonymous client connected");
    assert!(chart::connect_as(nats, "frontend", "wrong").await.is_err(), "wrong password accepted");

    // The frontend reads the state, which is all it needs.
    let frontend = chart::connect_as(nats, "frontend", password_of("frontend")).await.expect("frontend connects");
    let js = async_nats::jetstream::ContextBuilder::new().timeout(Duration::from_secs(2)).build(frontend);
    let kv = js.get_key_value(STATE_BUCKET).await.expect("frontend opens the bucket");
    assert!(kv.get(names::STATE_KEY).await.expect("frontend reads").is_some());

    // The publisher does everything its lease needs: read it (the running publisher holds it), and
    // create, update and delete a key with an expected revision.
    let publisher = chart::connect_as(nats, "publisher", password_of("publisher")).await.expect("publisher connects");
    let js = async_nats::jetstream::ContextBuilder::new().timeout(Duration::from_secs(2)).build(publisher.clone());
    assert!(direct_get_lease(&publisher).await.is_some(), "the publisher cannot read its lease");
    let lease = js.get_key_value(LEASE_BUCKET).await.expect("the publisher opens the lease bucket");
    let holder = lease.entry(names::LEASE_KEY).await.expect("the publisher reads the lease").expect("a holder");
    assert_eq!(holder.operation, async_nats::jetstream::kv::Operation::Put);
    let revision = lease.create("probe", "a".into()).await.expect("create");
    let revision = lease.update("probe", "b".into(), revision).await.expect("update with the revision");
    assert!(lease.update("probe", "c".into(), revision - 1).await.is_err(), "an update with a stale revision");
    lease.delete_expect_revision("probe", Some(revision)).await.expect("delete with the revision");

    // The aggregator writes its window checkpoints, and reads them back (the next start does).
    let admin = chart::admin(nats).await;
    let checkpoints = async_nats::jetstream::new(admin.clone()).get_key_value(CHECKPOINT_BUCKET).await.expect("bucket");
    let written = || async { checkpoints.get(names::STATE_KEY).await.ok().flatten() };
    testkit::wait_for("a window checkpoint under least privilege", support::DEADLINE, written).await;
    let aggregator_user = chart::connect_as(nats, "aggregator", password_of("aggregator")).await.expect("connects");
    let js = async_nats::jetstream::ContextBuilder::new().timeout(Duration::from_secs(2)).build(aggregator_user);
    let bucket = js.get_key_value(CHECKPOINT_BUCKET).await.expect("the aggregator opens the checkpoint bucket");
    assert!(bucket.get(names::STATE_KEY).await.expect("the aggregator reads its checkpoint").is_some());

    // Nothing forged reached the stream: every stored message is a real tick.
    let ticks = support::read_ticks(&async_nats::jetstream::new(admin)).await;
    assert!(!ticks.is_empty());
    assert!(ticks.iter().all(|t| t.price == 70_000.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_may_not_create_waits_for_the_setup_step_and_is_not_ready_meanwhile() {
    let nats = NatsServer::start_with_config(Some(&chart::authorization()));
    let pipeline = Pipeline::start_with_nats(
        nats,
        &[(Venue::Coinbase, 71_000.0), (Venue::Kraken, 71_000.0), (Venue::Bitstamp, 71_000.0)],
    )
    .await;
    let [publisher_flags, aggregator_flags, frontend_flags] = SERVICE_USERS.map(UserFlags::new);
    let publisher = pipeline.start_publisher(&publisher_flags.with(&[])).await;
    let aggregator = pipeline.start_aggregator_with("aggregator", &aggregator_flags.with(&[])).await;
    let (api, _api) = pipeline.start_frontend_with(App::BitcoinApi, &frontend_flags.with(&[])).await;

    // Connected, but nothing to work with: each waits, unready, and says why.
    for (name, url) in [
        ("publisher", format!("{}/readiness", publisher.ops_url)),
        ("aggregator", format!("{}/readiness", aggregator.ops_url)),
        ("bitcoin-api", format!("{api}/readiness")),
    ] {
        let (status, body) = testkit::wait_for(&format!("{name} up and waiting"), support::DEADLINE, || async {
            let (status, body) = pipeline.get_text(&url).await;
            (status != 0 && !body.contains("not connected")).then_some((status, body))
        })
        .await;
        assert_eq!(status, 503, "{name} is ready without its stream or bucket: {body}");
    }
    let admin = chart::admin(&pipeline.nats).await;
    let js = async_nats::jetstream::new(admin);
    for stream in STREAMS {
        assert!(js.get_stream(stream).await.is_err(), "{stream} was created by a service user");
    }

    // The setup step runs: everything starts by itself.
    chart::run_setup(&pipeline.nats).await;
    pipeline.wait_for_body(&format!("{api}/btc/USD"), "a price after the setup step", |b| b["price"] == 71_000.0).await;
    for service in [&publisher, &aggregator] {
        let url = format!("{}/readiness", service.ops_url);
        testkit::wait_for("ready", support::DEADLINE, || async {
            (pipeline.get_text(&url).await.0 == 200).then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aggregator_whose_user_predates_the_checkpoint_bucket_serves_without_checkpoints() {
    // NATS still runs the previous chart's permissions (upgraded after the services, against the
    // documented order): the aggregator's user may not touch the checkpoint bucket.
    let mut config = chart::authorization();
    for subject in [
        "$JS.API.STREAM.INFO.KV_window_checkpoint",
        "$KV.window_checkpoint.*",
        "$JS.API.DIRECT.GET.KV_window_checkpoint.>",
    ] {
        let listed = format!("\"{subject}\",");
        assert!(config.contains(&listed), "{subject} is not in the chart's permissions");
        config = config.replace(&listed, "");
    }
    let nats = NatsServer::start_with_config(Some(&config));
    chart::run_setup(&nats).await;
    let pipeline = Pipeline::start_with_nats(
        nats,
        &[(Venue::Coinbase, 72_000.0), (Venue::Kraken, 72_000.0), (Venue::Bitstamp, 72_000.0)],
    )
    .await;
    let [publisher_flags, aggregator_flags, frontend_flags] = SERVICE_USERS.map(UserFlags::new);
    let (api, _api) = pipeline.start_frontend_with(App::BitcoinApi, &frontend_flags.with(&[])).await;
    let _publisher = pipeline.start_publisher(&publisher_flags.with(&[])).await;
    let aggregator = pipeline.start_aggregator_with("aggregator", &aggregator_flags.with(&[])).await;
    pipeline.wait_for_body(&format!("{api}/btc/USD"), "a price without checkpoints", |b| b["price"] == 72_000.0).await;
    let (status, body) = pipeline.get_text(&format!("{}/readiness", aggregator.ops_url)).await;
    assert_eq!((status, body.as_str()), (200, "OK"), "the aggregator is ready without checkpoints");
    let stored = "btc_aggregator_checkpoint_writes_total{result=\"stored\"}";
    assert_eq!(pipeline.metric(&aggregator.ops_url, stored).await, None, "a checkpoint was written");
    // And it restarts (by replay) as before.
    aggregator.stop().await;
    let restarted = pipeline.start_aggregator_with("aggregator", &aggregator_flags.with(&[])).await;
    let replayed = "btc_aggregator_window_starts_total{from=\"replay\"}";
    testkit::wait_for("the restarted aggregator replays", support::DEADLINE, || async {
        pipeline.metric(&restarted.ops_url, replayed).await.filter(|starts| *starts >= 1.0)
    })
    .await;
    let url = format!("{}/readiness", restarted.ops_url);
    testkit::wait_for("the restarted aggregator ready", support::DEADLINE, || async {
        (pipeline.get_text(&url).await.0 == 200).then_some(())
    })
    .await;
}
