//! The adapters together: their pair tables, the real bodies, and a fuzz of every parser.

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

use super::*;

#[test]
fn source_names_round_trip() {
    for source in Source::ALL {
        assert_eq!(source.name().parse::<Source>(), Ok(source));
    }
    assert_eq!(" Kraken ".parse::<Source>(), Ok(Source::Kraken));
    assert!("mtgox".parse::<Source>().unwrap_err().contains("known sources"));
}

#[test]
fn every_adapter_has_an_https_url_a_path_and_a_rate_limit() {
    for source in Source::ALL {
        let exchange = source.exchange();
        assert!(exchange.default_base_url().starts_with("https://"), "{source}");
        assert!(!exchange.default_base_url().ends_with('/'), "{source}");
        assert!(exchange.path(&Pair::seed()).is_some_and(|path| path.starts_with('/')), "{source}");
        assert!(exchange.min_interval() >= Duration::from_millis(500), "{source}");
    }
    assert!(Source::Coingecko.exchange().min_interval() >= Duration::from_secs(60));
    assert!(Source::Coingecko.exchange().is_reference());
}

fn pair(text: &str) -> Pair {
    text.parse().expect("a pair")
}

/// Each adapter's request for each default pair, as its exchange's documentation spells it.
const DEFAULT_PAIR_PATHS: [(Source, [&str; 4]); 8] = [
    (
        Source::Coinbase,
        ["/v2/prices/BTC-USD/spot", "/v2/prices/BTC-EUR/spot", "/v2/prices/BTC-GBP/spot", "/v2/prices/ETH-USD/spot"],
    ),
    (
        Source::Kraken,
        [
            "/0/public/Ticker?pair=XBTUSD",
            "/0/public/Ticker?pair=XBTEUR",
            "/0/public/Ticker?pair=XBTGBP",
            "/0/public/Ticker?pair=ETHUSD",
        ],
    ),
    (
        Source::Bitstamp,
        ["/api/v2/ticker/btcusd/", "/api/v2/ticker/btceur/", "/api/v2/ticker/btcgbp/", "/api/v2/ticker/ethusd/"],
    ),
    (Source::Gemini, ["/v1/pubticker/btcusd", "/v1/pubticker/btceur", "/v1/pubticker/btcgbp", "/v1/pubticker/ethusd"]),
    (Source::Bitfinex, ["/v2/ticker/tBTCUSD", "/v2/ticker/tBTCEUR", "/v2/ticker/tBTCGBP", "/v2/ticker/tETHUSD"]),
    (Source::BinanceUs, ["/api/v3/ticker/price?symbol=BTCUSD", "", "", "/api/v3/ticker/price?symbol=ETHUSD"]),
    (
        Source::Cexio,
        ["/api/last_price/BTC/USD", "/api/last_price/BTC/EUR", "/api/last_price/BTC/GBP", "/api/last_price/ETH/USD"],
    ),
    (
        Source::Coingecko,
        [
            "/api/v3/simple/price?ids=bitcoin&vs_currencies=usd&include_last_updated_at=true",
            "/api/v3/simple/price?ids=bitcoin&vs_currencies=eur&include_last_updated_at=true",
            "/api/v3/simple/price?ids=bitcoin&vs_currencies=gbp&include_last_updated_at=true",
            "/api/v3/simple/price?ids=ethereum&vs_currencies=usd&include_last_updated_at=true",
        ],
    ),
];

#[test]
fn each_adapter_asks_for_each_default_pair_by_its_exchange_s_symbol() {
    let pairs = Pair::defaults();
    assert_eq!(pairs.iter().map(Pair::as_str).collect::<Vec<_>>(), ["BTC-USD", "BTC-EUR", "BTC-GBP", "ETH-USD"]);
    for (source, paths) in DEFAULT_PAIR_PATHS {
        for (pair, path) in pairs.iter().zip(paths) {
            let expected = Some(path.to_string()).filter(|path| !path.is_empty());
            assert_eq!(source.exchange().path(pair), expected, "{source} {pair}");
            assert_eq!(source.quotes(pair), expected.is_some(), "{source} {pair}");
        }
    }
}

#[test]
fn pairs_an_exchange_does_not_list_are_not_quoted() {
    for source in Source::ALL {
        for unknown in ["DOGE-USD", "BTC-JPY", "USD-BTC", "BTC-USDT"] {
            assert_eq!(source.exchange().path(&pair(unknown)), None, "{source} {unknown}");
        }
    }
    // Binance.US has no EUR or GBP markets; the others list ETH against both.
    for eth in ["ETH-EUR", "ETH-GBP"] {
        let quoting: Vec<Source> = Source::ALL.into_iter().filter(|s| s.quotes(&pair(eth))).collect();
        assert!(!quoting.contains(&Source::BinanceUs) && quoting.len() == 7, "{eth}: {quoting:?}");
    }
}

/// A real-format BTC-EUR answer per source, and whether its body names its pair (so that it is
/// refused as an answer for BTC-USD).
const EUR_BODIES: [(Source, &str, bool); 7] = [
    (Source::Coinbase, r#"{"data": {"amount": "83012.35", "base": "BTC", "currency": "EUR"}}"#, true),
    (Source::Kraken, r#"{"error": [], "result": {"XXBTZEUR": {"c": ["83012.40000", "0.00012000"]}}}"#, true),
    (Source::Bitstamp, r#"{"timestamp": "1764010799", "last": "83012", "bid": "83011", "ask": "83013"}"#, false),
    (
        Source::Gemini,
        r#"{"last": "83012.35", "volume": {"BTC": "1.5", "EUR": "124518.5", "timestamp": 1764010799000}}"#,
        false,
    ),
    (Source::Bitfinex, "[83011.0, 1.5, 83012.0, 1.3, 81.0, 0.001, 83012.0, 143.21, 83800.0, 81800.0]", false),
    (Source::Cexio, r#"{"lprice": "83012.5", "curr1": "BTC", "curr2": "EUR"}"#, true),
    (Source::Coingecko, r#"{"bitcoin": {"eur": 83012.35, "last_updated_at": 1764010740}}"#, true),
];

#[test]
fn each_adapter_reads_another_pair_and_refuses_an_answer_for_the_wrong_one() {
    let eur = pair("BTC-EUR");
    for (source, body, names_its_pair) in EUR_BODIES {
        let parsed = source.exchange().parse(&eur, body.as_bytes()).unwrap_or_else(|e| panic!("{source}: {e}"));
        assert!((83_012.0..83_013.0).contains(&parsed.price.get()), "{source}: {parsed:?}");
        let as_usd = source.exchange().parse(&Pair::seed(), body.as_bytes());
        assert_eq!(as_usd.is_err(), names_its_pair, "{source}: {as_usd:?}");
    }
    // Kraken answers ETH-USD under XETHZUSD; Binance.US names ETHUSD; CoinGecko keys `ethereum`.
    let eth = pair("ETH-USD");
    let kraken = r#"{"error": [], "result": {"XETHZUSD": {"c": ["3012.40000", "0.5"]}}}"#;
    assert_eq!(Source::Kraken.exchange().parse(&eth, kraken.as_bytes()).map(|p| p.price.get()), Ok(3012.4));
    let binance = r#"{"symbol": "ETHUSD", "price": "3012.35000000"}"#;
    assert_eq!(Source::BinanceUs.exchange().parse(&eth, binance.as_bytes()).map(|p| p.price.get()), Ok(3012.35));
    assert!(Source::BinanceUs.exchange().parse(&Pair::seed(), binance.as_bytes()).is_err());
    let gecko = r#"{"ethereum": {"usd": 3012.35, "last_updated_at": 1764010740}}"#;
    assert_eq!(Source::Coingecko.exchange().parse(&eth, gecko.as_bytes()).map(|p| p.price.get()), Ok(3012.35));
    assert!(Source::Coingecko.exchange().parse(&Pair::seed(), gecko.as_bytes()).is_err());
}

#[test]
fn only_binance_us_reads_a_budget_from_headers() {
    let mut headers = HeaderMap::new();
    headers.insert("x-mbx-used-weight-1m", "1199".parse().expect("header value"));
    headers.insert("x-mbx-used-weight", "1199".parse().expect("header value"));
    for source in Source::ALL {
        let throttle = source.exchange().throttle(&headers, Utc::now());
        assert_eq!(throttle.is_some(), source == Source::BinanceUs, "{source}: {throttle:?}");
    }
}

#[test]
fn lenient_fields_accept_strings_and_numbers() {
    let v: Value = serde_json::json!({"s": "97012.5", "n": 97012.5, "t": "1764010799", "tn": 1764010799});
    assert_eq!(price_field(v.get("s"), "s"), price_field(v.get("n"), "n"));
    assert_eq!(unix_seconds_field(v.get("t"), "t"), unix_seconds_field(v.get("tn"), "tn"));
    assert_eq!(price_field(v.get("x"), "x"), Err(ParseError::MissingField("x")));
}

/// Real-format bodies from exchange-apis.md, one per source, as the fuzz corpus.
const REAL_BODIES: [(Source, &str); 8] = [
    (Source::Coinbase, r#"{"data": {"amount": "97012.35", "base": "BTC", "currency": "USD"}}"#),
    (
        Source::Kraken,
        r#"{"error": [], "result": {"XXBTZUSD": {"a": ["97012.40000", "1", "1.000"], "b": ["97012.30000", "2", "2.000"], "c": ["97012.40000", "0.00012000"], "v": ["512.34567890", "2345.67890123"], "p": ["96950.12345", "96500.98765"], "t": [12345, 67890], "l": ["96100.00000", "95800.00000"], "h": ["97500.00000", "97800.00000"], "o": "96800.10000"}}}"#,
    ),
    (
        Source::Bitstamp,
        r#"{"timestamp": "1764010799", "open": "96800", "high": "97800", "low": "95800", "last": "97012", "volume": "1234.56789012", "vwap": "96950", "bid": "97011", "ask": "97013", "side": "0", "open_24": "96500", "percent_change_24": "0.53"}"#,
    ),
    (
        Source::Gemini,
        r#"{"bid": "97011.98", "ask": "97013.02", "last": "97012.35", "volume": {"BTC": "2210.505328803", "USD": "214443211.463379586263", "timestamp": 1764010799000}}"#,
    ),
    (Source::Bitfinex, "[97011.0, 12.5, 97012.0, 10.3, 812.0, 0.0084, 97012.0, 1543.21, 97800.0, 95800.0]"),
    (Source::BinanceUs, r#"{"symbol": "BTCUSD", "price": "97012.35000000"}"#),
    (Source::Cexio, r#"{"lprice": "97012.5", "curr1": "BTC", "curr2": "USD"}"#),
    (Source::Coingecko, r#"{"bitcoin": {"usd": 97012.35, "last_updated_at": 1764010740}}"#),
];

#[rustfmt::skip]
const TOKENS: [&str; 22] = [
    "0", "-", "-5", "1e308", "NaN", "\"NaN\"", "0.0", "\"\"", "null", "true", "[", "]", "{", "}", ",", ":", "\"",
    "\"error\"", "99999999999", "9223372036854775808", "[\"error\", 1, \"x\"]", "{\"error\": \"x\"}",
];

/// One change to a real body; positions are taken relative to the body as it is by then.
#[derive(Debug, Clone)]
enum Edit {
    Flip(Index, u8),
    Insert(Index, Index),
    Cut(Index, usize),
    Truncate(Index),
    /// Another digit where there is one: a price that still parses, but a different one.
    Digit(Index, u8),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| Edit::Flip(at, byte)),
        (any::<Index>(), any::<Index>()).prop_map(|(at, token)| Edit::Insert(at, token)),
        (any::<Index>(), 0..12usize).prop_map(|(at, len)| Edit::Cut(at, len)),
        any::<Index>().prop_map(Edit::Truncate),
        (any::<Index>(), 0..10u8).prop_map(|(at, digit)| Edit::Digit(at, digit)),
    ]
}

fn apply(bytes: &mut Vec<u8>, edit: &Edit) {
    let at = |index: &Index, bytes: &Vec<u8>| index.index(bytes.len() + 1);
    match edit {
        Edit::Flip(i, byte) => {
            let at = at(i, bytes);
            if at < bytes.len() {
                bytes[at] = *byte;
            }
        }
        Edit::Insert(i, token) => {
            let at = at(i, bytes);
            bytes.splice(at..at, TOKENS[token.index(TOKENS.len())].bytes());
        }
        Edit::Cut(i, len) => {
            let at = at(i, bytes);
            let end = (at + len).min(bytes.len());
            bytes.drain(at..end);
        }
        Edit::Truncate(i) => {
            let at = at(i, bytes);
            bytes.truncate(at);
        }
        Edit::Digit(i, digit) => {
            let at = at(i, bytes);
            if at < bytes.len() && bytes[at].is_ascii_digit() {
                bytes[at] = b'0' + digit;
            }
        }
    }
}

/// Random bytes, or a real body with a few byte flips, JSON-token insertions, cuts and
/// truncations: mostly-valid JSON reaches the adapters' field logic, not only the JSON parser.
fn fuzz_input() -> impl Strategy<Value = Vec<u8>> {
    let junk = proptest::collection::vec(any::<u8>(), 0..64);
    let edited = (any::<Index>(), proptest::collection::vec(edit(), 0..4)).prop_map(|(body, edits)| {
        let mut bytes = REAL_BODIES[body.index(REAL_BODIES.len())].1.as_bytes().to_vec();
        for edit in &edits {
            apply(&mut bytes, edit);
        }
        bytes
    });
    prop_oneof![1 => junk, 3 => edited]
}

#[test]
fn the_real_bodies_parse() {
    for (source, body) in REAL_BODIES {
        assert!(
            source.exchange().parse(&Pair::seed(), body.as_bytes()).is_ok(),
            "{source}: corpus body does not parse"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn no_input_panics_an_adapter_or_yields_an_impossible_price(input in fuzz_input()) {
        use crate::price::MAX_PLAUSIBLE_PRICE;

        let shown = String::from_utf8_lossy(&input);
        for source in Source::ALL {
            // A panic fails the case, and proptest shrinks the input to a small one.
            if let Ok(parsed) = source.exchange().parse(&Pair::seed(), &input) {
                let price = parsed.price.get();
                prop_assert!(
                    price.is_finite() && price > 0.0 && price <= MAX_PLAUSIBLE_PRICE,
                    "{} accepted {} from {:?}", source, price, shown
                );
            }
        }
    }
}

/// Guards against a generator that only ever produces junk, which would test nothing.
#[test]
fn the_fuzz_input_often_reaches_the_adapters_field_logic() {
    let mut runner = TestRunner::deterministic();
    let strategy = fuzz_input();
    let mut accepted = 0;
    for _ in 0..2_000 {
        let input = strategy.new_tree(&mut runner).expect("an input").current();
        accepted += Source::ALL.iter().filter(|source| source.exchange().parse(&Pair::seed(), &input).is_ok()).count();
    }
    assert!(accepted > 100, "only {accepted} inputs parsed");
}
