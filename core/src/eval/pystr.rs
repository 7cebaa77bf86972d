//! Python `str` semantics the metrics depend on: where `codecs` readers end a line, and (shared
//! with gpt2_decode.py's rules in `text::pystr`) which characters `str.strip()` and
//! `str.split()` treat as whitespace. Rust's own definitions differ (e.g. U+001C..U+001F are
//! Python whitespace but not Rust's), so the file readers and tokenisers use these instead.

pub use crate::text::pystr::{is_py_space, py_split, py_strip};

/// The lines a `codecs.open(..., 'UTF-8')` reader yields, without their line ends. It
/// splits like `str.splitlines()`: on `\r\n`, and on each of `\n \r \v \f \x1c \x1d \x1e
/// \x85 U+2028 U+2029`. A final line end does not start another (empty) line.
pub fn py_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let ends_line =
            matches!(c, '\n' | '\r' | '\x0b' | '\x0c' | '\x1c' | '\x1d' | '\x1e' | '\u{85}' | '\u{2028}' | '\u{2029}');
        if !ends_line {
            continue;
        }
        lines.push(&text[start..i]);
        start = i + c.len_utf8();
        if c == '\r' {
            if let Some(&(j, '\n')) = chars.peek() {
                chars.next();
                start = j + 1;
            }
        }
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_like_codecs_readline() {
        // Expected from CPython: codecs.open(f, 'rb', 'UTF-8') over these bytes.
        let text = "a\rb\r\nc\x0bd\x0ce\x1cf\u{85}g\u{2028}h\u{2029}i\x1fj\n\nk";
        assert_eq!(py_lines(text), ["a", "b", "c", "d", "e", "f", "g", "h", "i\x1fj", "", "k"]);
        assert_eq!(py_lines("x\n"), ["x"]);
        assert_eq!(py_lines("x\n\n"), ["x", ""]);
        assert!(py_lines("").is_empty());
    }

    #[test]
    fn strip_uses_python_whitespace() {
        assert_eq!(py_strip("\x1f a b\u{a0}\u{3000}"), "a b");
        assert_eq!(py_strip("\u{feff}a"), "\u{feff}a");
        assert_eq!(py_split(" a\x1cb  c ").collect::<Vec<_>>(), ["a", "b", "c"]);
    }
}
