//! The configuration's flags: defaults, overrides and what is refused.

use super::*;
use clap::Parser;

#[test]
fn setup_is_a_subcommand_with_the_stream_settings_and_the_lease_ttl() {
    let config = PublisherConfig::try_parse_from([
        "publisher",
        "setup",
        "--nats-user",
        "admin",
        "--nats-password-file",
        "/etc/nats-admin/password",
        "--nats-replicas",
        "3",
        "--lease-ttl",
        "5s",
    ])
    .expect("parses");
    let Some(Command::Setup(setup)) = config.command else { panic!("not the setup subcommand") };
    assert_eq!(setup.setup.nats.user.as_deref(), Some("admin"));
    assert_eq!(setup.setup.stream.replicas, 3);
    assert_eq!(setup.setup.lease_ttl, Duration::from_secs(5));
    assert_eq!(setup.setup.timeout, Duration::from_secs(120));
    // The publisher's own flags belong to the publisher, not to its setup.
    assert!(PublisherConfig::try_parse_from(["publisher", "setup", "--quorum", "2"]).is_err());
    assert!(PublisherConfig::try_parse_from(["publisher"]).expect("parses").command.is_none());
}

#[test]
fn defaults_poll_every_source_at_their_real_urls() {
    let config = PublisherConfig::try_parse_from(["publisher"]).expect("defaults parse");
    assert_eq!(config.poll_interval, Duration::from_secs(1));
    assert_eq!(config.endpoints().len(), Source::ALL.len());
    assert_eq!(config.endpoints()[1], (Source::Kraken, "https://api.kraken.com".to_string()));
    assert_eq!(config.breaker_rules().rate_limit_backoff, Duration::from_secs(30));
    assert_eq!(config.round_deadline(), Duration::from_millis(800));
    assert_eq!(config.pairs(), Pair::defaults());
}

#[test]
fn pairs_parse_in_any_case_without_repeats() {
    let config = PublisherConfig::try_parse_from(["publisher", "--pairs", "eth-usd, BTC-USD,ETH-USD"]).expect("parses");
    assert_eq!(config.pairs().iter().map(Pair::as_str).collect::<Vec<_>>(), ["ETH-USD", "BTC-USD"]);
}

#[test]
fn the_round_deadline_follows_the_poll_interval() {
    let config =
        PublisherConfig::try_parse_from(["publisher", "--poll-interval", "2s", "--round-deadline-fraction", "0.5"])
            .expect("parses");
    assert_eq!(config.round_deadline(), Duration::from_secs(1));
}

#[test]
fn source_urls_override_base_urls() {
    let config = PublisherConfig::try_parse_from([
        "publisher",
        "--sources",
        "kraken,coinbase,kraken",
        "--source-urls",
        "kraken=http://127.0.0.1:9001/,coinbase=http://127.0.0.1:9002",
    ])
    .expect("parses");
    assert_eq!(
        config.endpoints(),
        vec![
            (Source::Kraken, "http://127.0.0.1:9001".to_string()),
            (Source::Coinbase, "http://127.0.0.1:9002".to_string())
        ]
    );
}

#[test]
fn plain_http_only_when_an_override_asks_for_it() {
    let parse = |args: &[&str]| PublisherConfig::try_parse_from(args).expect("parses").plaintext();
    assert_eq!(parse(&["publisher"]), Plaintext::Refused);
    assert_eq!(parse(&["publisher", "--source-urls", "kraken=https://mirror.example/kraken"]), Plaintext::Refused);
    assert_eq!(parse(&["publisher", "--source-urls", "kraken=http://127.0.0.1:9001"]), Plaintext::Allowed);
    // An override of a source that is not polled changes nothing.
    assert_eq!(
        parse(&["publisher", "--sources", "coinbase", "--source-urls", "kraken=http://127.0.0.1:9001"]),
        Plaintext::Refused
    );
}

#[test]
fn bad_values_are_rejected_with_a_reason() {
    for args in [
        vec!["publisher", "--sources", "mtgox"],
        vec!["publisher", "--pairs", "BTCUSD"],
        vec!["publisher", "--pairs", "BTC-USD,,ETH-USD"],
        vec!["publisher", "--pairs", "prices.>"],
        vec!["publisher", "--source-urls", "kraken"],
        vec!["publisher", "--source-urls", "kraken=ftp://x"],
        vec!["publisher", "--outlier-threshold", "5"],
        vec!["publisher", "--quorum", "0"],
        vec!["publisher", "--poll-interval", "soon"],
        vec!["publisher", "--round-deadline-fraction", "0"],
        vec!["publisher", "--round-deadline-fraction", "1"],
        vec!["publisher", "--round-deadline-fraction", "1.5"],
    ] {
        assert!(PublisherConfig::try_parse_from(&args).is_err(), "{args:?} accepted");
    }
}
