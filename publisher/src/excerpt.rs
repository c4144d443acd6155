//! Text that came from outside (an exchange's answer, or whoever answers in its name), made safe to
//! put in a log line, a span or an error message.
//!
//! An exchange's error text is untrusted: up to 64 KiB of it would fill the logs, a CR/LF in it
//! would forge log lines, and terminal escapes would act on whoever reads them. Every error that
//! carries such text holds an [`Excerpt`], whose only constructor cuts it and escapes it, so no
//! code path can log the raw text by mistake.

use std::fmt;

/// Most characters an excerpt shows (escapes included); the rest is counted, not shown.
pub const MAX_EXCERPT_CHARS: usize = 200;

/// At most [`MAX_EXCERPT_CHARS`] characters of outside text, control characters escaped, with the
/// size of the whole when it was cut.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Excerpt(String);

impl Excerpt {
    pub fn new(text: &str) -> Self {
        let mut shown = String::with_capacity(text.len().min(MAX_EXCERPT_CHARS) + 32);
        let mut chars = 0;
        for ch in text.chars() {
            let escaped = Escaped::of(ch);
            if chars + escaped.len() > MAX_EXCERPT_CHARS {
                shown.push_str(&format!("… ({} bytes in all)", text.len()));
                break;
            }
            chars += escaped.len();
            escaped.push_to(&mut shown);
        }
        Excerpt(shown)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Excerpt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Excerpt {
    fn from(text: &str) -> Self {
        Excerpt::new(text)
    }
}

impl From<String> for Excerpt {
    fn from(text: String) -> Self {
        Excerpt::new(&text)
    }
}

/// One character as an excerpt shows it.
enum Escaped {
    Plain(char),
    /// `\n`, `\u{1b}`...: control characters, and the invisible ones that reorder or hide text
    /// (bidi overrides, zero-width, line separators). A backslash is doubled, so an escape in
    /// the excerpt always means the character itself was sent.
    Escape(String),
}

impl Escaped {
    fn of(ch: char) -> Self {
        match ch {
            '\\' => Escaped::Escape("\\\\".to_string()),
            '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}' => {
                Escaped::Escape(ch.escape_unicode().to_string())
            }
            // escape_default gives `\n`, `\r`, `\t` for those three and `\u{..}` for the others.
            ch if ch.is_control() => Escaped::Escape(ch.escape_default().to_string()),
            ch => Escaped::Plain(ch),
        }
    }

    fn len(&self) -> usize {
        match self {
            Escaped::Plain(_) => 1,
            Escaped::Escape(text) => text.len(),
        }
    }

    fn push_to(self, out: &mut String) {
        match self {
            Escaped::Plain(ch) => out.push(ch),
            Escaped::Escape(text) => out.push_str(&text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_plain_text_is_kept_as_it_is() {
        assert_eq!(Excerpt::new("EQuery:Unknown asset pair").as_str(), "EQuery:Unknown asset pair");
        assert_eq!(Excerpt::new("").as_str(), "");
        assert_eq!(Excerpt::new("prix: 97 012,5 €").as_str(), "prix: 97 012,5 €");
    }

    #[test]
    fn control_and_invisible_characters_are_escaped() {
        let excerpt = Excerpt::new("a\r\nINFO forged\u{1b}[31m\u{0}\u{7}\t\u{202e}x\u{200b}\\u{1b}");
        assert_eq!(excerpt.as_str(), r"a\r\nINFO forged\u{1b}[31m\u{0}\u{7}\t\u{202e}x\u{200b}\\u{1b}");
        assert!(!excerpt.as_str().chars().any(char::is_control));
    }

    #[test]
    fn long_text_is_cut_and_its_size_told() {
        let text = "x".repeat(64 * 1024);
        let excerpt = Excerpt::new(&text);
        assert_eq!(excerpt.as_str(), format!("{}… (65536 bytes in all)", "x".repeat(MAX_EXCERPT_CHARS)));
        // Escapes count towards the bound, so text made only of control characters is bounded too.
        let escapes = Excerpt::new(&"\u{1b}".repeat(10_000));
        assert!(escapes.as_str().chars().count() <= MAX_EXCERPT_CHARS + 30, "{escapes}");
        // A cut never splits a character or an escape.
        let mixed = Excerpt::new(&"é\n".repeat(1_000));
        assert!(mixed.as_str().starts_with(r"é\né\n"), "{mixed}");
        assert!(mixed.as_str().contains(r"\n…") || mixed.as_str().contains("é…"), "{mixed}");
    }
}
