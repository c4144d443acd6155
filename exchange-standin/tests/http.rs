//! The stand-ins over real HTTP, with a hand-written HTTP/1.1 client so the test sees exactly
//! what goes over the wire.

use std::net::SocketAddr;
use std::time::Duration;

use btc_contract::Pair;
use exchange_standin::{Behaviour, StandIn, Venue, source_urls};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bound on any single exchange with a stand-in; nothing here should come close.
const DEADLINE: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.body))
    }
}

async fn get(addr: SocketAddr, path_and_query: &str) -> Answer {
    tokio::time::timeout(DEADLINE, get_unbounded(addr, path_and_query)).await.expect("answered in time")
}

async fn get_unbounded(addr: SocketAddr, path_and_query: &str) -> Answer {
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    let request = format!("GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("sends");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("reads");
    let text = String::from_utf8(raw).expect("UTF-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("header/body separator");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line.split(' ').nth(1).and_then(|code| code.parse().ok()).expect("status code");
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.trim().to_string(), value.trim().to_string()))
        .collect();
    Answer { status, headers, body: body.to_string() }
}

/// The venue's price field, where the publisher's adapter looks for it.
fn price_value(venue: Venue, body: &Value) -> &Value {
    match venue {
        Venue::Coinbase => &body["data"]["amount"],
        Venue::Kraken => &body["result"]["XXBTZUSD"]["c"][0],
        Venue::Bitstamp | Venue::Gemini => &body["last"],
        Venue::Bitfinex => &body[6],
        Venue::BinanceUs => &body["price"],
        Venue::Cexio => &body["lprice"],
        Venue::Coingecko => &body["bitcoin"]["usd"],
    }
}

fn price_in(venue: Venue, body: &Value) -> Option<f64> {
    match price_value(venue, body) {
        Value::String(text) => text.parse().ok(),
        other => other.as_f64(),
    }
}

/// The request the publisher sends: the venue's path plus the real query where there is one.
fn publisher_path(venue: Venue) -> String {
    let query = match venue {
        Venue::Kraken => "?pair=XBTUSD",
        Venue::BinanceUs => "?symbol=BTCUSD",
        Venue::Coingecko => "?ids=bitcoin&vs_currencies=usd&include_last_updated_at=true",
        _ => "",
    };
    format!("{}{query}", venue.path())
}

#[tokio::test]
async fn every_venue_serves_its_real_format_with_the_price() {
    let price = 97_012.345_6;
    for venue in Venue::ALL {
        let stand_in = StandIn::start(venue, price).await.expect("starts");
        let answer = get(stand_in.addr(), &publisher_path(venue)).await;
        assert_eq!(answer.status, 200, "{venue}: {answer:?}");
        assert_eq!(answer.header("content-type"), Some("application/json"), "{venue}");
        let body = answer.json();
        assert_eq!(price_in(venue, &body), Some(venue.quoted(price)), "{venue}: {body}");
        // Strings where the venue sends strings, numbers where it sends numbers.
        let numeric = matches!(venue, Venue::Bitfinex | Venue::Coingecko);
        assert_eq!(price_value(venue, &body).is_number(), numeric, "{venue}: {body}");
    }
}

/// `pair`'s price in a venue's answer for it: under Kraken's one `result` key, CoinGecko's coin id
/// and lower-case currency, or where the BTC-USD answer has it.
fn pair_price_in(venue: Venue, pair: &Pair, body: &Value) -> Option<f64> {
    let value = match venue {
        Venue::Kraken => body["result"].as_object()?.values().next()?["c"][0].clone(),
        Venue::Coingecko => body.as_object()?.values().next()?[pair.currency().to_ascii_lowercase()].clone(),
        _ => price_value(venue, body).clone(),
    };
    match value {
        Value::String(text) => text.parse().ok(),
        other => other.as_f64(),
    }
}

#[tokio::test]
async fn every_venue_answers_each_default_pair_it_lists_at_its_real_path_and_level() {
    for venue in Venue::ALL {
        let stand_in = StandIn::start(venue, 97_012.345_6).await.expect("starts");
        for pair in Pair::defaults() {
            let Some(request) = venue.request(&pair) else {
                assert!(venue == Venue::BinanceUs && pair.currency() != "USD", "{venue} does not list {pair}");
                continue;
            };
            let answer = get(stand_in.addr(), &request).await;
            assert_eq!(answer.status, 200, "{venue} {pair}: {answer:?}");
            let body = answer.json();
            let expected = venue.quoted(stand_in.pair_price(&pair));
            assert_eq!(pair_price_in(venue, &pair, &body), Some(expected), "{venue} {pair}: {body}");
        }
        // Each pair at its own level: ETH-USD near 3,000 when BTC-USD is near 97,000.
        let eth = "ETH-USD".parse().expect("a pair");
        assert!((2_900.0..3_100.0).contains(&stand_in.pair_price(&eth)), "{venue}");
        stand_in.set_pair_price(&eth, 3_333.3);
        if let Some(request) = venue.request(&eth) {
            let body = get(stand_in.addr(), &request).await.json();
            assert_eq!(pair_price_in(venue, &eth, &body), Some(venue.quoted(3_333.3)), "{venue}: {body}");
        }
    }
}

#[tokio::test]
async fn a_pair_a_venue_does_not_list_gets_the_venue_s_own_answer() {
    let answer_to = |venue: Venue, request: &'static str| async move {
        let stand_in = StandIn::start(venue, 97_000.0).await.expect("starts");
        let answer = get(stand_in.addr(), request).await;
        (answer.status, answer.json())
    };
    let kraken = answer_to(Venue::Kraken, "/0/public/Ticker?pair=XBTJPY").await;
    assert_eq!(kraken, (200, serde_json::json!({"error": ["EQuery:Unknown asset pair"]})));
    let binance = answer_to(Venue::BinanceUs, "/api/v3/ticker/price?symbol=BTCEUR").await;
    assert_eq!(binance, (400, serde_json::json!({"code": -1121, "msg": "Invalid symbol."})));
    let gecko = answer_to(Venue::Coingecko, "/api/v3/simple/price?ids=dogecoin&vs_currencies=usd").await;
    assert_eq!(gecko, (200, serde_json::json!({})));
    for (venue, request) in [
        (Venue::Coinbase, "/v2/prices/DOGE-USD/spot"),
        (Venue::Bitstamp, "/api/v2/ticker/dogeusd/"),
        (Venue::Gemini, "/v1/pubticker/dogeusd"),
        (Venue::Bitfinex, "/v2/ticker/tDOGEUSD"),
        (Venue::Cexio, "/api/last_price/DOGE/USD"),
    ] {
        let (status, body) = answer_to(venue, request).await;
        assert!(status == 200 || (400..500).contains(&status), "{venue}: {status}");
        assert_eq!(price_in(venue, &body), None, "{venue}: {body}");
        assert!(body.is_object() || body.is_array(), "{venue}: {body}");
    }
}

#[tokio::test]
async fn quote_times_are_current() {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs();
    let near = |seconds: u64| seconds.abs_diff(now) <= 5;

    let bitstamp = StandIn::start(Venue::Bitstamp, 97_000.0).await.expect("starts");
    let body = get(bitstamp.addr(), Venue::Bitstamp.path()).await.json();
    let seconds: u64 = body["timestamp"].as_str().and_then(|t| t.parse().ok()).expect("string seconds");
    assert!(near(seconds), "{body}");

    let gemini = StandIn::start(Venue::Gemini, 97_000.0).await.expect("starts");
    let body = get(gemini.addr(), Venue::Gemini.path()).await.json();
    let millis = body["volume"]["timestamp"].as_u64().expect("integer millis");
    assert!(near(millis / 1000), "{body}");

    let coingecko = StandIn::start(Venue::Coingecko, 97_000.0).await.expect("starts");
    let body = get(coingecko.addr(), Venue::Coingecko.path()).await.json();
    assert!(near(body["bitcoin"]["last_updated_at"].as_u64().expect("integer seconds")), "{body}");
}

#[tokio::test]
async fn set_price_moves_the_next_answer() {
    let stand_in = StandIn::start(Venue::Cexio, 97_000.0).await.expect("starts");
    stand_in.set_price(98_123.4);
    assert_eq!(stand_in.price(), 98_123.4);
    let body = get(stand_in.addr(), Venue::Cexio.path()).await.json();
    assert_eq!(body, serde_json::json!({"lprice": "98123.4", "curr1": "BTC", "curr2": "USD"}));
}

#[tokio::test]
async fn noise_stays_within_its_bound() {
    let stand_in = StandIn::start(Venue::Coingecko, 97_000.0).await.expect("starts");
    stand_in.set_noise(0.001);
    for _ in 0..5 {
        let body = get(stand_in.addr(), Venue::Coingecko.path()).await.json();
        let price = price_in(Venue::Coingecko, &body).expect("price");
        assert!((96_902.0..=97_098.0).contains(&price), "{price}");
    }
}

#[tokio::test]
async fn status_gives_that_status_with_the_venue_error_body() {
    for venue in Venue::ALL {
        let stand_in = StandIn::start(venue, 97_000.0).await.expect("starts");
        stand_in.set_behaviour(Behaviour::Status(503));
        let answer = get(stand_in.addr(), venue.path()).await;
        assert_eq!(answer.status, 503, "{venue}");
        let body = answer.json();
        assert_eq!(price_in(venue, &body), None, "{venue}: {body}");
    }
    let kraken = StandIn::start(Venue::Kraken, 97_000.0).await.expect("starts");
    kraken.set_behaviour(Behaviour::Status(500));
    let answer = get(kraken.addr(), Venue::Kraken.path()).await;
    assert_eq!(answer.status, 500);
    assert_eq!(answer.json(), serde_json::json!({"error": ["EGeneral:Internal error"]}));
}

#[tokio::test]
async fn rate_limited_gives_429_with_retry_after() {
    for venue in Venue::ALL {
        let stand_in = StandIn::start(venue, 97_000.0).await.expect("starts");
        stand_in.set_behaviour(Behaviour::RateLimited { retry_after_secs: 7 });
        let answer = get(stand_in.addr(), venue.path()).await;
        assert_eq!(answer.status, 429, "{venue}");
        assert_eq!(answer.header("retry-after"), Some("7"), "{venue}");
        answer.json();
    }
    let bitfinex = StandIn::start(Venue::Bitfinex, 97_000.0).await.expect("starts");
    bitfinex.set_behaviour(Behaviour::RateLimited { retry_after_secs: 30 });
    assert_eq!(
        get(bitfinex.addr(), Venue::Bitfinex.path()).await.json(),
        serde_json::json!({"error": "ERR_RATE_LIMIT"})
    );
}

#[tokio::test]
async fn throttled_in_200_gives_each_venue_its_own_rate_limit_signal() {
    let answer_of = |venue: Venue| async move {
        let stand_in = StandIn::start(venue, 97_000.0).await.expect("starts");
        stand_in.set_behaviour(Behaviour::ThrottledIn200);
        get(stand_in.addr(), venue.path()).await
    };
    let kraken = answer_of(Venue::Kraken).await;
    assert_eq!((kraken.status, kraken.json()), (200, serde_json::json!({"error": ["EAPI:Rate limit exceeded"]})));
    let bitfinex = answer_of(Venue::Bitfinex).await;
    assert_eq!((bitfinex.status, bitfinex.json()), (200, serde_json::json!({"error": "ERR_RATE_LIMIT"})));
    // Binance.US says it in its weight headers, on an answer that still carries the price.
    let binance = answer_of(Venue::BinanceUs).await;
    assert_eq!(binance.status, 200);
    assert_eq!(price_in(Venue::BinanceUs, &binance.json()), Some(97_000.0));
    assert_eq!(binance.header("x-mbx-used-weight-1m"), Some("1200"));
    assert_eq!(binance.header("x-mbx-used-weight"), Some("1200"));
    // Venues without such a signal answer their 429.
    let coinbase = answer_of(Venue::Coinbase).await;
    assert_eq!((coinbase.status, coinbase.header("retry-after")), (429, None));
}

#[tokio::test]
async fn binance_reports_the_weight_used_this_minute() {
    let stand_in = StandIn::start(Venue::BinanceUs, 97_000.0).await.expect("starts");
    let weight = |answer: &Answer| -> u32 {
        let current = answer.header("x-mbx-used-weight-1m").and_then(|w| w.parse().ok()).expect("weight header");
        assert_eq!(answer.header("x-mbx-used-weight"), answer.header("x-mbx-used-weight-1m"));
        current
    };
    let first = weight(&get(stand_in.addr(), &publisher_path(Venue::BinanceUs)).await);
    let second = weight(&get(stand_in.addr(), &publisher_path(Venue::BinanceUs)).await);
    // Each request weighs 1; the count starts again when the minute rolls over.
    assert_eq!(first, 1);
    assert!(second == 2 || second == 1, "{second}");
    stand_in.set_behaviour(Behaviour::UsedWeight(1_100));
    let answer = get(stand_in.addr(), Venue::BinanceUs.path()).await;
    assert_eq!((answer.status, weight(&answer)), (200, 1_100));
    assert_eq!(price_in(Venue::BinanceUs, &answer.json()), Some(97_000.0));
    // Other venues send no such header.
    let kraken = StandIn::start(Venue::Kraken, 97_000.0).await.expect("starts");
    assert_eq!(get(kraken.addr(), Venue::Kraken.path()).await.header("x-mbx-used-weight-1m"), None);
}

#[tokio::test]
async fn delayed_answers_normally_after_the_delay_and_counts_concurrent_requests() {
    let stand_in = StandIn::start(Venue::Gemini, 97_000.0).await.expect("starts");
    stand_in.set_behaviour(Behaviour::Delayed { delay_ms: 300 });
    let started = std::time::Instant::now();
    let (first, second) =
        tokio::join!(get(stand_in.addr(), Venue::Gemini.path()), get(stand_in.addr(), Venue::Gemini.path()));
    assert!(started.elapsed() >= Duration::from_millis(300), "{:?}", started.elapsed());
    for answer in [first, second] {
        assert_eq!(answer.status, 200);
        assert_eq!(price_in(Venue::Gemini, &answer.json()), Some(97_000.0));
    }
    assert_eq!(stand_in.max_concurrent_requests(), 2);
}

#[tokio::test]
async fn exchange_errors_come_inside_200_only_where_the_venue_does_that() {
    for venue in Venue::ALL {
        let stand_in = StandIn::start(venue, 97_000.0).await.expect("starts");
        stand_in.set_behaviour(Behaviour::ExchangeError);
        let answer = get(stand_in.addr(), venue.path()).await;
        let in_200 = matches!(venue, Venue::Kraken | Venue::Bitfinex);
        assert_eq!(answer.status == 200, in_200, "{venue}: {answer:?}");
        assert!(answer.status == 200 || (400..500).contains(&answer.status), "{venue}: {answer:?}");
        let body = answer.json();
        assert_eq!(price_in(venue, &body), None, "{venue}: {body}");
    }
}

#[tokio::test]
async fn broken_answers_are_broken_in_the_asked_way() {
    for venue in Venue::ALL {
        let stand_in = StandIn::start(venue, 97_000.0).await.expect("starts");

        stand_in.set_behaviour(Behaviour::Garbage);
        let answer = get(stand_in.addr(), venue.path()).await;
        assert_eq!(answer.status, 200, "{venue}");
        assert!(serde_json::from_str::<Value>(&answer.body).is_err(), "{venue}: {}", answer.body);

        stand_in.set_behaviour(Behaviour::MissingField);
        let answer = get(stand_in.addr(), venue.path()).await;
        assert_eq!(answer.status, 200, "{venue}");
        let body = answer.json();
        assert_eq!(price_in(venue, &body), None, "{venue}: {body}");
        assert!(!body.is_null(), "{venue}");

        stand_in.set_behaviour(Behaviour::RawPrice("\"NaN\"".into()));
        let answer = get(stand_in.addr(), venue.path()).await;
        assert_eq!(answer.status, 200, "{venue}");
        assert!(answer.body.contains("\"NaN\""), "{venue}: {}", answer.body);
        answer.json();

        stand_in.set_behaviour(Behaviour::RawPrice("-5".into()));
        let body = get(stand_in.addr(), venue.path()).await.json();
        assert_eq!(price_in(venue, &body), Some(-5.0), "{venue}: {body}");
    }
}

#[tokio::test]
async fn hang_holds_the_request_until_the_behaviour_changes() {
    let stand_in = StandIn::start(Venue::Gemini, 97_000.0).await.expect("starts");
    stand_in.set_behaviour(Behaviour::Hang);
    let addr = stand_in.addr();
    let pending = tokio::spawn(async move { get_unbounded(addr, Venue::Gemini.path()).await });
    wait_for_requests(&stand_in, 1).await;
    assert!(!pending.is_finished());
    stand_in.set_behaviour(Behaviour::Normal);
    let answer = tokio::time::timeout(DEADLINE, pending).await.expect("answered in time").expect("no panic");
    assert_eq!(answer.status, 200);
    assert_eq!(price_in(Venue::Gemini, &answer.json()), Some(97_000.0));
}

#[tokio::test]
async fn drop_releases_a_hanging_request_and_frees_the_port() {
    let stand_in = StandIn::start(Venue::Bitstamp, 97_000.0).await.expect("starts");
    stand_in.set_behaviour(Behaviour::Hang);
    let addr = stand_in.addr();
    let pending = tokio::spawn(async move {
        let mut stream = TcpStream::connect(addr).await.expect("connects");
        let request = format!("GET {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n", Venue::Bitstamp.path());
        stream.write_all(request.as_bytes()).await.expect("sends");
        let mut raw = Vec::new();
        // Either a short answer or a closed connection: what matters is that it ends.
        let _ = stream.read_to_end(&mut raw).await;
        raw
    });
    wait_for_requests(&stand_in, 1).await;
    drop(stand_in);
    tokio::time::timeout(DEADLINE, pending).await.expect("released in time").expect("no panic");
    let again = tokio::time::timeout(DEADLINE, async {
        loop {
            match StandIn::start_on(Venue::Bitstamp, 1.0, addr).await {
                Ok(stand_in) => return stand_in,
                Err(_) => tokio::task::yield_now().await,
            }
        }
    })
    .await
    .expect("port freed in time");
    assert_eq!(again.addr(), addr);
}

#[tokio::test]
async fn unknown_paths_are_404_and_requests_are_counted() {
    let stand_in = StandIn::start(Venue::Kraken, 97_000.0).await.expect("starts");
    assert_eq!(stand_in.requests(), 0);
    assert_eq!(get(stand_in.addr(), "/0/public/Ticker?pair=XBTUSD").await.status, 200);
    assert_eq!(get(stand_in.addr(), "/v2/prices/BTC-USD/spot").await.status, 404);
    assert_eq!(get(stand_in.addr(), "/").await.status, 404);
    stand_in.set_behaviour(Behaviour::Status(503));
    assert_eq!(get(stand_in.addr(), "/0/public/Ticker").await.status, 503);
    assert_eq!(stand_in.requests(), 4);
}

#[tokio::test]
async fn source_urls_lists_every_stand_in() {
    let coinbase = StandIn::start(Venue::Coinbase, 1.0).await.expect("starts");
    let kraken = StandIn::start(Venue::Kraken, 1.0).await.expect("starts");
    assert_eq!(coinbase.base_url(), format!("http://127.0.0.1:{}", coinbase.addr().port()));
    let expected = format!("coinbase={},kraken={}", coinbase.base_url(), kraken.base_url());
    assert_eq!(source_urls(&[coinbase, kraken]), expected);
    assert_eq!(source_urls(&[]), "");
}

#[test]
fn venue_names_round_trip() {
    for venue in Venue::ALL {
        assert_eq!(venue.name().parse::<Venue>(), Ok(venue));
        assert_eq!(venue.to_string(), venue.name());
    }
    assert_eq!(" BinanceUS ".parse::<Venue>(), Ok(Venue::BinanceUs));
    assert!("mtgox".parse::<Venue>().is_err_and(|error| error.contains("known venues")));
}

async fn wait_for_requests(stand_in: &StandIn, count: u64) {
    tokio::time::timeout(DEADLINE, async {
        while stand_in.requests() < count {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("request arrived in time");
}
