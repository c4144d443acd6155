use super::*;

const NOW: Duration = Duration::from_millis(1_764_010_799_123);

fn normal(venue: Venue, price: f64) -> Value {
    let body = ticker(venue, &Pair::seed(), price, Some(&price_json(venue, price)), NOW);
    serde_json::from_str(&body).expect("normal answers are JSON")
}

#[test]
fn prices_are_written_as_each_venue_writes_them() {
    let price = 97_012.345_6;
    assert_eq!(normal(Venue::Coinbase, price)["data"]["amount"], "97012.35");
    assert_eq!(normal(Venue::Kraken, price)["result"]["XXBTZUSD"]["c"][0], "97012.30000");
    assert_eq!(normal(Venue::Bitstamp, price)["last"], "97012");
    assert_eq!(normal(Venue::Gemini, price)["last"], "97012.35");
    assert_eq!(normal(Venue::Bitfinex, price)[6], json!(97012.0));
    assert_eq!(normal(Venue::BinanceUs, price)["price"], "97012.35000000");
    assert_eq!(normal(Venue::Cexio, price)["lprice"], "97012.3");
    assert_eq!(normal(Venue::Coingecko, price)["bitcoin"]["usd"], json!(97012.35));
    assert_eq!(normal(Venue::Bitfinex, 100.456)[6], json!(100.46));
    assert_eq!(Venue::Bitfinex.quoted(97_012.6), 97_013.0);
}

#[test]
fn quote_times_are_now() {
    assert_eq!(normal(Venue::Bitstamp, 1.0)["timestamp"], "1764010799");
    assert_eq!(normal(Venue::Gemini, 1.0)["volume"]["timestamp"], json!(1_764_010_799_123u64));
    assert_eq!(normal(Venue::Coingecko, 1.0)["bitcoin"]["last_updated_at"], json!(1_764_010_799u64));
}

#[test]
fn raw_price_text_lands_in_the_price_field() {
    let body = ticker(Venue::Bitfinex, &Pair::seed(), 97_000.0, Some("NaN"), NOW);
    assert!(body.contains(",NaN,"), "{body}");
    let body = ticker(Venue::Kraken, &Pair::seed(), 97_000.0, Some("1e308"), NOW);
    let value: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(value["result"]["XXBTZUSD"]["c"][0], json!(1e308));
    assert!(!body.contains(PLACEHOLDER));
}

#[test]
fn missing_field_leaves_the_rest_in_place() {
    for venue in Venue::ALL {
        let body = ticker(venue, &Pair::seed(), 97_000.0, None, NOW);
        let value: Value = serde_json::from_str(&body).expect("JSON");
        assert!(!body.contains(PLACEHOLDER), "{venue}: {body}");
        assert_ne!(value, Value::Null, "{venue}");
    }
    assert_eq!(
        serde_json::from_str::<Value>(&ticker(Venue::Bitfinex, &Pair::seed(), 1.0, None, NOW))
            .map(|v| v[6].clone())
            .ok(),
        Some(Value::Null)
    );
}

#[test]
fn huge_errors_fill_the_body_without_passing_it() {
    for venue in Venue::ALL {
        let body = huge_error(venue, 64 * 1024);
        assert!(body.len() <= 64 * 1024 && body.len() > 60 * 1024, "{venue}: {} bytes", body.len());
        let value: Value = serde_json::from_str(&body).expect("JSON");
        assert!(value.to_string().contains("\\u001b[31m"), "{venue}");
    }
}

#[test]
fn other_pairs_are_written_under_their_own_names() {
    let eur: Pair = "BTC-EUR".parse().expect("a pair");
    let eth: Pair = "ETH-USD".parse().expect("a pair");
    let body = |venue: Venue, pair: &Pair| -> Value {
        serde_json::from_str(&ticker(venue, pair, 1.0, Some("1.0"), NOW)).expect("JSON")
    };
    assert_eq!(body(Venue::Coinbase, &eur)["data"]["currency"], "EUR");
    assert_eq!(body(Venue::Kraken, &eur)["result"]["XXBTZEUR"]["c"][0], json!(1.0));
    assert_eq!(body(Venue::Kraken, &eth)["result"]["XETHZUSD"]["c"][0], json!(1.0));
    assert_eq!(body(Venue::Gemini, &eth)["volume"]["ETH"], "2210.505328803");
    assert_eq!(body(Venue::BinanceUs, &eth)["symbol"], "ETHUSD");
    assert_eq!(body(Venue::Cexio, &eur)["curr2"], "EUR");
    assert_eq!(body(Venue::Coingecko, &eth)["ethereum"]["usd"], json!(1.0));
    // The price field of another pair can be left out too.
    let missing: Value = serde_json::from_str(&ticker(Venue::Coingecko, &eur, 1.0, None, NOW)).expect("JSON");
    assert_eq!(missing["bitcoin"].get("eur"), None, "{missing}");
}

#[test]
fn every_error_body_is_json() {
    for venue in Venue::ALL {
        for status in [400, 404, 429, 500, 502, 503] {
            let body = error(venue, status);
            assert!(serde_json::from_str::<Value>(&body).is_ok(), "{venue} {status}: {body}");
        }
        let (status, body) = exchange_error(venue);
        assert!(serde_json::from_str::<Value>(&body).is_ok(), "{venue}: {body}");
        assert!(status == 200 || (400..500).contains(&status), "{venue}: {status}");
        let (status, body) = unknown_pair(venue);
        assert!(serde_json::from_str::<Value>(&body).is_ok(), "{venue}: {body}");
        assert!(status == 200 || status == 400 || status == 404, "{venue}: {status}");
    }
}
