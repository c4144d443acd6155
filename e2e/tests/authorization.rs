//! The NATS users and permissions the chart deploys (`Helm/nats-values.yaml`), enforced by a real
//! nats-server: each service works with only its own user's permissions, a frontend's credentials
//! cannot forge a price, and nobody connects without credentials.

mod support;

use std::time::Duration;

use btc_common::names;
use exchange_standin::Venue;
use frontend::App;
use support::Pipeline;
use testkit::NatsServer;

const PASSWORDS: [(&str, &str); 4] = [
    ("PUBLISHER_PASSWORD", "test-publisher-secret"),
    ("AGGREGATOR_PASSWORD", "test-aggregator-secret"),
    ("FRONTEND_PASSWORD", "test-frontend-secret"),
    ("ADMIN_PASSWORD", "test-admin-secret"),
];

/// The `authorization` block of the chart's NATS values as nats-server configuration, with the
/// Secret's `<< $VAR >>` references replaced by test passwords.
fn chart_authorization() -> String {
    let mut json = chart_authorization_json();
    for (variable, password) in PASSWORDS {
        json = json.replace(&format!("<< ${variable} >>"), password);
    }
    assert!(!json.contains("<<"), "an unreplaced password reference: {json}");
    format!("authorization: {json}\n")
}

/// The chart's `config.merge.authorization`, as JSON (valid nats-server configuration syntax).
fn chart_authorization_json() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../Helm/nats-values.yaml");
    let values: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(&path).expect("nats-values.yaml"))
        .expect("nats-values.yaml is YAML");
    let authorization = &values["config"]["merge"]["authorization"];
    assert!(authorization.is_mapping(), "no config.merge.authorization in {}", path.display());
    serde_json::to_string(authorization).expect("as JSON")
}

/// The local stack's NATS users (`deploy/local/nats-auth.conf`, used by `make run`): the chart's
/// block, with the passwords as nats-server variables read from the environment.
fn local_stack_config() -> String {
    let mut json = chart_authorization_json();
    for (variable, _) in PASSWORDS {
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

async fn connect_as(nats: &NatsServer, user: &str, password: &str) -> Result<async_nats::Client, String> {
    async_nats::ConnectOptions::with_user_and_password(user.into(), password.into())
        .connect(nats.url())
        .await
        .map_err(|e| e.to_string())
}

fn password_of(user: &str) -> &'static str {
    let variable = format!("{}_PASSWORD", user.to_ascii_uppercase());
    PASSWORDS.iter().find(|(v, _)| *v == variable).map(|(_, p)| *p).expect("known user")
}

/// The subject of the publishers' lease key.
const LEASE_SUBJECT: &str = "$KV.publisher_lease.BTC-USD";

/// True if JetStream stored the publish.
async fn acked(
    publish: Result<async_nats::jetstream::context::PublishAckFuture, async_nats::jetstream::context::PublishError>,
) -> bool {
    match publish {
        Ok(ack) => ack.await.is_ok(),
        Err(_) => false,
    }
}

/// The lease entry by a direct get (the request a KV read sends), or None if no answer came.
async fn direct_get_lease(client: &async_nats::Client) -> Option<async_nats::Message> {
    let subject = format!("$JS.API.DIRECT.GET.KV_{}.{LEASE_SUBJECT}", names::LEASE_BUCKET);
    let answer = tokio::time::timeout(Duration::from_secs(2), client.request(subject, "".into())).await;
    answer.ok()?.ok().filter(|message| !message.payload.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_runs_with_its_own_user_and_no_more() {
    let nats = NatsServer::start_with_config(Some(&chart_authorization()));
    let pipeline = Pipeline::start_with_nats(
        nats,
        &[(Venue::Coinbase, 70_000.0), (Venue::Kraken, 70_000.0), (Venue::Bitstamp, 70_000.0)],
    )
    .await;
    let as_user = |user: &'static str| ["--nats-user", user, "--nats-password", password_of(user)];

    // The whole pipeline works with least privilege: every service with its own user.
    let (api, _api) = pipeline.start_frontend_with(App::BitcoinApi, &as_user("frontend")).await;
    let _publisher = pipeline.start_publisher(&as_user("publisher"));
    let _aggregator = pipeline.start_aggregator_with("aggregator", &as_user("aggregator"));
    pipeline
        .wait_for_body(&format!("{api}/btc/USD"), "a price under least privilege", |b| b["price"] == 70_000.0)
        .await;

    let nats = &pipeline.nats;
    // No credentials, or wrong ones: no connection.
    assert!(async_nats::connect(nats.url()).await.is_err(), "anonymous client connected");
    assert!(connect_as(nats, "frontend", "wrong").await.is_err(), "wrong password accepted");

    // A frontend's credentials cannot publish a tick, write the state, or delete the stream.
    let frontend = connect_as(nats, "frontend", password_of("frontend")).await.expect("frontend connects");
    let js = async_nats::jetstream::ContextBuilder::new().timeout(Duration::from_secs(2)).build(frontend.clone());
    let forged = js.publish(btc_common::names::TICK_SUBJECT, "{\"forged\":true}".into()).await;
    assert!(!acked(forged).await, "a frontend published a tick");
    assert!(!acked(js.publish("$KV.price_state.BTC-USD", "{}".into()).await).await, "a frontend wrote the state");
    assert!(js.delete_stream(btc_common::names::TICKS_STREAM).await.is_err(), "a frontend deleted the stream");
    // ... but it can read the state, which is all it needs.
    let kv = js.get_key_value(btc_common::names::STATE_BUCKET).await.expect("frontend opens the bucket");
    assert!(kv.get(btc_common::names::STATE_KEY).await.expect("frontend reads").is_some());

    // A frontend can neither write nor read the publishers' lease, nor delete its bucket.
    assert!(!acked(js.publish(LEASE_SUBJECT, "{}".into()).await).await, "a frontend wrote the lease");
    assert!(js.get_key_value(names::LEASE_BUCKET).await.is_err(), "a frontend opened the lease bucket");
    assert!(direct_get_lease(&frontend).await.is_none(), "a frontend read the lease");
    assert!(js.delete_key_value(names::LEASE_BUCKET).await.is_err(), "a frontend deleted the lease bucket");

    // The publisher cannot read or write the state.
    let publisher = connect_as(nats, "publisher", password_of("publisher")).await.expect("publisher connects");
    let js = async_nats::jetstream::ContextBuilder::new().timeout(Duration::from_secs(2)).build(publisher.clone());
    assert!(js.get_key_value(btc_common::names::STATE_BUCKET).await.is_err(), "the publisher opened the state");
    assert!(js.delete_stream(btc_common::names::TICKS_STREAM).await.is_err(), "the publisher deleted the stream");
    // It does everything its lease needs: read it (the running publisher holds it), and create,
    // update and delete a key with an expected revision; but it may not delete the bucket.
    assert!(direct_get_lease(&publisher).await.is_some(), "the publisher cannot read its lease");
    let lease = js.get_key_value(names::LEASE_BUCKET).await.expect("the publisher opens the lease bucket");
    let holder = lease.entry(names::LEASE_KEY).await.expect("the publisher reads the lease").expect("a holder");
    assert_eq!(holder.operation, async_nats::jetstream::kv::Operation::Put);
    let revision = lease.create("probe", "a".into()).await.expect("create");
    let revision = lease.update("probe", "b".into(), revision).await.expect("update with the revision");
    assert!(lease.update("probe", "c".into(), revision - 1).await.is_err(), "an update with a stale revision");
    lease.delete_expect_revision("probe", Some(revision)).await.expect("delete with the revision");
    assert!(js.delete_key_value(names::LEASE_BUCKET).await.is_err(), "the publisher deleted its lease bucket");

    // The aggregator cannot write the lease either.
    let aggregator = connect_as(nats, "aggregator", password_of("aggregator")).await.expect("aggregator connects");
    let js = async_nats::jetstream::ContextBuilder::new().timeout(Duration::from_secs(2)).build(aggregator);
    assert!(!acked(js.publish(LEASE_SUBJECT, "{}".into()).await).await, "the aggregator wrote the lease");

    // Nothing forged reached the stream: every stored message is a real tick.
    let admin = connect_as(nats, "admin", password_of("admin")).await.expect("admin connects");
    let ticks = support::read_ticks(&async_nats::jetstream::new(admin)).await;
    assert!(!ticks.is_empty());
    assert!(ticks.iter().all(|t| t.price == 70_000.0));
}
