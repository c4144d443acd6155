//! An exchange (or whoever answers in its name) is not trusted: a redirect is refused, never
//! followed, and the text of its errors reaches the logs cut short with control characters
//! escaped. Over real HTTP against local stand-ins answering in each exchange's format.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use btc_contract::Pair;
use chrono::Utc;
use clap::Parser;
use exchange_standin::{Behaviour, StandIn, Venue, source_urls};
use publisher::PublisherConfig;
use publisher::exchanges::Source;
use publisher::fetch::{FetchError, Fetcher, Plaintext};
use publisher::metrics::PublisherMetrics;
use publisher::round::Rounds;

const TIMEOUT: Duration = Duration::from_millis(500);
/// Longest log line a failing exchange may cause: the excerpt of its text plus the line's own
/// fields (time, level, span, source, message).
const MAX_LOG_LINE: usize = 1024;

fn source_of(venue: Venue) -> Source {
    venue.name().parse().expect("every stand-in venue is a publisher source")
}

/// The path and query the publisher asks each exchange for BTC-USD.
fn ticker_path(venue: Venue) -> String {
    source_of(venue).exchange().path(&Pair::seed()).expect("every venue lists BTC-USD")
}

#[tokio::test]
async fn a_redirect_is_refused_and_never_followed() {
    let venue = Venue::Kraken;
    // What the redirect points at would answer with a valid price if it were asked.
    let target = StandIn::start(venue, 12_345.0).await.expect("stand-in starts");
    let port = target.addr().port();
    let redirecting = StandIn::start(venue, 97_000.0).await.expect("stand-in starts");
    let fetcher = Fetcher::new(TIMEOUT, Plaintext::Allowed).expect("HTTP client");
    for location in [
        // Another port of the same host, another host name, and a plain-http URL.
        format!("http://127.0.0.1:{port}{}", ticker_path(venue)),
        format!("http://localhost:{port}{}", ticker_path(venue)),
        format!("http://[::1]:{port}{}", ticker_path(venue)),
    ] {
        for status in [301, 302, 303, 307, 308] {
            redirecting.set_behaviour(Behaviour::Redirect { status, location: location.clone() });
            let result = fetcher.fetch(source_of(venue), &Pair::seed(), &redirecting.base_url()).await;
            assert_eq!(result.as_ref().map_err(FetchError::kind).err(), Some("redirect"), "{status} {location}");
            match result {
                Err(FetchError::Redirect { status: got, .. }) => assert_eq!(got, status),
                other => panic!("{status} to {location}: {other:?}"),
            }
        }
    }
    assert_eq!(target.requests(), 0, "a redirect was followed");
}

#[tokio::test]
async fn the_exchanges_own_urls_are_polled_over_https_only() {
    // What the publisher runs with when SOURCE_URLS names no http URL.
    let fetcher = Fetcher::new(TIMEOUT, Plaintext::Refused).expect("HTTP client");
    let plain = StandIn::start(Venue::Coinbase, 97_000.0).await.expect("stand-in starts");
    let result = fetcher.fetch(Source::Coinbase, &Pair::seed(), &plain.base_url()).await;
    assert_eq!(result.as_ref().map_err(FetchError::kind).err(), Some("insecure_url"), "{result:?}");
    assert_eq!(plain.requests(), 0, "a plain-http request was sent");
    for source in Source::ALL {
        assert!(source.exchange().default_base_url().starts_with("https://"), "{source}");
    }
}

/// Log lines written into memory, as the publisher writes them (text format, without colours).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn an_exchange_error_of_64_kib_reaches_the_log_short_and_escaped() {
    let mut stand_ins = Vec::new();
    for venue in Venue::ALL {
        let stand_in = StandIn::start(venue, 97_000.0).await.expect("stand-in starts");
        // As much as the publisher reads of a body (64 KiB), nearly all of it error text.
        stand_in.set_behaviour(Behaviour::HugeError { body_bytes: publisher::fetch::MAX_BODY_BYTES });
        stand_ins.push(stand_in);
    }
    let names: Vec<&str> = Venue::ALL.iter().map(|venue| venue.name()).collect();
    let config = PublisherConfig::try_parse_from([
        "publisher".to_string(),
        "--sources".into(),
        names.join(","),
        "--source-urls".into(),
        source_urls(&stand_ins),
        "--request-timeout".into(),
        "500ms".into(),
    ])
    .expect("publisher config");
    let fetcher = Fetcher::new(config.request_timeout, config.plaintext()).expect("HTTP client");
    let mut rounds = Rounds::new(&config, fetcher, Arc::new(PublisherMetrics::default()));

    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .finish();
    // The runtime of this test is single-threaded, so every task logs through this subscriber.
    let guard = tracing::subscriber::set_default(subscriber);
    rounds.run(Utc::now()).await;
    drop(guard);

    let log = captured.text();
    for stand_in in &stand_ins {
        assert_eq!(stand_in.requests(), 1, "{}", stand_in.venue());
    }
    for venue in Venue::ALL {
        let failure = log
            .lines()
            .find(|line| line.contains("source failed") && line.contains(&format!("source={venue}")))
            .unwrap_or_else(|| panic!("no failure logged for {venue}:\n{}", cut(&log)));
        assert!(failure.contains("exchange reported an error"), "{venue}: {}", cut(failure));
        // The text is there, escaped: a reader sees what was sent without a terminal acting on it.
        assert!(failure.contains(r"\r\nERROR forged log line"), "{venue}: {}", cut(failure));
    }
    for line in log.lines() {
        assert!(line.len() <= MAX_LOG_LINE, "a log line of {} bytes: {}", line.len(), cut(line));
        assert!(!line.starts_with("ERROR forged"), "a forged log line: {}", cut(line));
        let raw = line.chars().find(|c| c.is_control() || ('\u{202a}'..='\u{202e}').contains(c));
        assert_eq!(raw, None, "a raw control character in: {}", cut(line));
    }
}

/// The start of a long text, for a failure message that stays readable.
fn cut(text: &str) -> String {
    text.chars().take(600).collect()
}
