//! The price type that cannot hold an impossible price: what every exchange adapter must produce.

/// Highest price accepted from any exchange, USD: the contract's bound, which readers of the
/// ticks enforce too.
pub const MAX_PLAUSIBLE_PRICE: f64 = btc_contract::MAX_PRICE;

/// A BTC price in USD: finite, positive and below [`MAX_PLAUSIBLE_PRICE`]. Parse, don't validate:
/// an adapter can only hand the round a `Price`, so NaN, 0, negatives and absurd sizes stop here.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Price(f64);

/// Why a value is not a [`Price`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidPrice(pub String);

impl Price {
    pub fn new(value: f64) -> Result<Self, InvalidPrice> {
        if !value.is_finite() {
            return Err(InvalidPrice(format!("price {value} is not finite")));
        }
        if value <= 0.0 {
            return Err(InvalidPrice(format!("price {value} is not positive")));
        }
        if value > MAX_PLAUSIBLE_PRICE {
            return Err(InvalidPrice(format!("price {value} is above the plausible maximum {MAX_PLAUSIBLE_PRICE}")));
        }
        Ok(Self(value))
    }

    /// Parses a decimal string as exchanges send it (`"97012.35000000"`).
    pub fn parse(text: &str) -> Result<Self, InvalidPrice> {
        let trimmed = text.trim();
        // f64's parser accepts "inf", "NaN" and "1e5"; exchanges send plain decimals, so anything
        // else is a broken feed rather than a price.
        if trimmed.is_empty() || !trimmed.bytes().all(|b| b.is_ascii_digit() || b == b'.' || b == b'-') {
            return Err(InvalidPrice(format!("{text:?} is not a decimal price")));
        }
        let value: f64 = trimmed.parse().map_err(|_| InvalidPrice(format!("{text:?} is not a decimal price")))?;
        Self::new(value)
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_prices() {
        assert_eq!(Price::parse("97012.35000000").map(Price::get), Ok(97_012.35));
        assert_eq!(Price::new(0.01).map(Price::get), Ok(0.01));
    }

    #[test]
    fn rejects_impossible_prices() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, -1.0, 1e308, MAX_PLAUSIBLE_PRICE * 1.01] {
            assert!(Price::new(bad).is_err(), "{bad} accepted");
        }
        for bad in ["", " ", "NaN", "inf", "1e5", "abc", "-5", "0", "0.0", "12,5", "1.2.3"] {
            assert!(Price::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
