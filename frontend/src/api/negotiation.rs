//! Content negotiation of the price and average routes (RFC 9110 §12.5.1): JSON by default, the
//! bare number the seed's app printed (`97012.35`) for a client that prefers `text/plain`, so the
//! seed's `curl` and `float(requests.get(...).text)` clients keep working.

use poem::http::{HeaderMap, header};

/// The representations of a price or an average.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representation {
    /// `application/json`: the documented object (the default).
    Json,
    /// `text/plain`: the bare number.
    Text,
}

/// The representation `request` prefers: text only when its `Accept` gives `text/plain` a higher
/// quality than `application/json`. No `Accept`, `*/*`, a tie, or only types neither matches
/// (answered with JSON rather than a 406: the seed never refused a client) give JSON.
pub fn preferred(request: &HeaderMap) -> Representation {
    let mut json = Quality::default();
    let mut text = Quality::default();
    for value in request.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for range in value.split(',') {
            let Some((media, q)) = parse_range(range) else { continue };
            json.offer(&media, q, "application", "json");
            text.offer(&media, q, "text", "plain");
        }
    }
    if text.value() > json.value() { Representation::Text } else { Representation::Json }
}

/// The quality of the most specific media range that matched a type so far.
#[derive(Debug, Default)]
struct Quality {
    /// 3 for `type/subtype`, 2 for `type/*`, 1 for `*/*`, 0 for none.
    specificity: u8,
    q: f32,
}

impl Quality {
    fn offer(&mut self, media: &str, q: f32, kind: &str, subtype: &str) {
        let specificity = match media.split_once('/') {
            Some((k, s)) if k.eq_ignore_ascii_case(kind) && s.eq_ignore_ascii_case(subtype) => 3,
            Some((k, "*")) if k.eq_ignore_ascii_case(kind) => 2,
            Some(("*", "*")) => 1,
            _ => return,
        };
        if specificity > self.specificity || (specificity == self.specificity && q > self.q) {
            *self = Self { specificity, q };
        }
    }

    /// A type no range matched is not acceptable (0).
    fn value(&self) -> f32 {
        if self.specificity == 0 { 0.0 } else { self.q }
    }
}

/// `text/plain; charset=utf-8; q=0.5` as (`text/plain`, 0.5); `None` for a malformed range.
fn parse_range(range: &str) -> Option<(String, f32)> {
    let mut parts = range.split(';');
    let media = parts.next()?.trim();
    if media.is_empty() || !media.contains('/') {
        return None;
    }
    let mut q = 1.0;
    for parameter in parts {
        match parameter.split_once('=') {
            Some((name, value)) if name.trim().eq_ignore_ascii_case("q") => {
                q = value.trim().parse::<f32>().ok().filter(|q| (0.0..=1.0).contains(q))?;
            }
            _ => {}
        }
    }
    Some((media.to_string(), q))
}

#[cfg(test)]
mod tests {
    use poem::http::HeaderValue;

    use super::*;
    use Representation::{Json, Text};

    fn of(accept: &[&str]) -> Representation {
        let mut headers = HeaderMap::new();
        for value in accept {
            headers.append(header::ACCEPT, HeaderValue::from_str(value).expect("header"));
        }
        preferred(&headers)
    }

    #[test]
    fn json_is_the_default() {
        for accept in [&[][..], &["*/*"], &["application/json"], &["image/png"], &[""], &["nonsense"]] {
            assert_eq!(of(accept), Json, "{accept:?}");
        }
        assert_eq!(of(&["text/plain, application/json"]), Json, "a tie goes to JSON");
        assert_eq!(of(&["text/plain;q=0.5, */*;q=0.5"]), Json);
    }

    #[test]
    fn text_plain_preferred_is_text() {
        for accept in [
            &["text/plain"][..],
            &["Text/Plain; charset=utf-8"],
            &["text/*"],
            &["application/json;q=0.5, text/plain"],
            &["text/plain;q=0.9, */*;q=0.1"],
            &["application/json;q=0", "text/plain;q=0.1"],
        ] {
            assert_eq!(of(accept), Text, "{accept:?}");
        }
        assert_eq!(of(&["text/plain;q=0"]), Json, "q=0 means not acceptable");
        assert_eq!(of(&["text/plain;q=2"]), Json, "an invalid q drops the range");
        assert_eq!(of(&["text/*;q=0.2, text/plain;q=0.1, application/json;q=0.15"]), Json, "most specific wins");
    }
}
