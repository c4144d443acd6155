//! Every way an exchange can fail, over real HTTP against a local stand-in answering in that
//! exchange's format: each is a typed error, none is a price.

use std::time::Duration;

use btc_contract::Pair;
use exchange_standin::{Behaviour, StandIn, Venue};
use publisher::exchanges::{ParseError, Source};
use publisher::fetch::{FetchError, Fetcher, Plaintext};

const TIMEOUT: Duration = Duration::from_millis(300);

fn source_of(venue: Venue) -> Source {
    venue.name().parse().expect("every stand-in venue is a publisher source")
}

async fn fetch(venue: Venue, behaviour: Behaviour) -> Result<f64, FetchError> {
    let stand_in = StandIn::start(venue, 97_000.0).await.expect("stand-in starts");
    stand_in.set_behaviour(behaviour);
    let fetcher = Fetcher::new(TIMEOUT, Plaintext::Allowed).expect("HTTP client");
    fetcher.fetch(source_of(venue), &Pair::seed(), &stand_in.base_url()).await.map(|quote| quote.price.get())
}

#[tokio::test]
async fn every_venue_in_its_real_format_gives_its_price() {
    for venue in Venue::ALL {
        let price = fetch(venue, Behaviour::Normal).await;
        assert_eq!(price, Ok(venue.quoted(97_000.0)), "{venue}");
    }
}

#[tokio::test]
async fn every_venue_gives_each_default_pair_it_lists_through_the_real_adapter() {
    let fetcher = Fetcher::new(TIMEOUT, Plaintext::Allowed).expect("HTTP client");
    for venue in Venue::ALL {
        let stand_in = StandIn::start(venue, 97_000.0).await.expect("stand-in starts");
        let source = source_of(venue);
        for pair in Pair::defaults() {
            // The stand-in lists what the adapter asks for, at the very path it asks.
            assert_eq!(venue.request(&pair), source.exchange().path(&pair), "{venue} {pair}");
            let result = fetcher.fetch(source, &pair, &stand_in.base_url()).await.map(|quote| quote.price.get());
            if source.quotes(&pair) {
                assert_eq!(result, Ok(venue.quoted(stand_in.pair_price(&pair))), "{venue} {pair}");
            } else {
                assert_eq!(result, Err(FetchError::Unlisted), "{venue} {pair}");
            }
        }
    }
}

#[tokio::test]
async fn a_server_error_is_an_http_status_error() {
    for venue in Venue::ALL {
        assert_eq!(fetch(venue, Behaviour::Status(500)).await, Err(FetchError::Status(500)), "{venue}");
        assert_eq!(fetch(venue, Behaviour::Status(503)).await, Err(FetchError::Status(503)), "{venue}");
    }
}

#[tokio::test]
async fn a_429_carries_its_retry_after() {
    for venue in Venue::ALL {
        let result = fetch(venue, Behaviour::RateLimited { retry_after_secs: 7 }).await;
        assert!(
            matches!(
                result,
                Err(FetchError::RateLimited { status: 429, retry_after: Some(wait), .. }) if wait == Duration::from_secs(7)
            ),
            "{venue}: {result:?}"
        );
    }
}

#[tokio::test]
async fn a_rate_limit_signal_inside_a_200_is_a_rate_limit() {
    // Kraken and Bitfinex say it in the body, Binance.US in its weight header at the limit.
    for venue in [Venue::Kraken, Venue::Bitfinex, Venue::BinanceUs] {
        let result = fetch(venue, Behaviour::ThrottledIn200).await;
        assert_eq!(result.as_ref().map_err(FetchError::kind), Err("rate_limited"), "{venue}: {result:?}");
    }
    // Other clients behind the same IP have spent most of Binance.US's minute: stop before the
    // limit and wait for the minute to roll over.
    match fetch(Venue::BinanceUs, Behaviour::UsedWeight(1_150)).await {
        Err(FetchError::RateLimited { retry_after: Some(wait), .. }) => {
            assert!(wait > Duration::ZERO && wait <= Duration::from_secs(61), "{wait:?}");
        }
        other => panic!("not a rate limit with a wait: {other:?}"),
    }
    assert_eq!(fetch(Venue::BinanceUs, Behaviour::UsedWeight(600)).await, Ok(Venue::BinanceUs.quoted(97_000.0)));
}

#[tokio::test]
async fn a_hanging_exchange_times_out() {
    for venue in [Venue::Kraken, Venue::Coinbase] {
        assert_eq!(fetch(venue, Behaviour::Hang).await, Err(FetchError::Timeout(TIMEOUT)), "{venue}");
    }
}

#[tokio::test]
async fn a_body_that_drips_slowly_times_out_as_a_whole() {
    // Headers arrive at once; the body would take over a second: the one timeout covers the body.
    let result = fetch(Venue::Kraken, Behaviour::SlowBody { byte_every_ms: 5 }).await;
    assert_eq!(result, Err(FetchError::Timeout(TIMEOUT)));
}

#[tokio::test]
async fn garbage_and_missing_fields_are_parse_errors() {
    for venue in Venue::ALL {
        assert!(
            matches!(fetch(venue, Behaviour::Garbage).await, Err(FetchError::Parse(ParseError::Json(_)))),
            "{venue}"
        );
        assert!(matches!(fetch(venue, Behaviour::MissingField).await, Err(FetchError::Parse(_))), "{venue}");
        assert!(fetch(venue, Behaviour::ExchangeError).await.is_err(), "{venue}");
    }
}

#[tokio::test]
async fn impossible_prices_are_never_quotes() {
    for venue in Venue::ALL {
        for raw in ["0", "-5", "\"NaN\"", "1e308", "\"-1\"", "\"abc\"", "null"] {
            let result = fetch(venue, Behaviour::RawPrice(raw.to_string())).await;
            assert!(result.is_err(), "{venue} accepted price {raw}: {result:?}");
        }
    }
}

#[tokio::test]
async fn an_unreachable_exchange_is_a_transport_error() {
    let fetcher = Fetcher::new(TIMEOUT, Plaintext::Allowed).expect("HTTP client");
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    let result = fetcher.fetch(Source::Kraken, &Pair::seed(), &format!("http://127.0.0.1:{port}")).await;
    assert!(matches!(result, Err(FetchError::Transport(_))), "{result:?}");
}
