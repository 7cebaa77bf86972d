//! Client strings in error messages: a short prefix with control characters escaped, so an
//! error never echoes a huge or hostile string back to a caller, into a log or onto a terminal.

/// Characters of a client string an error message shows at most.
pub const QUOTED_CHARS: usize = 64;

/// The first [`QUOTED_CHARS`] characters of `s`, control characters escaped, `…` when cut.
pub fn prefix(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().take(QUOTED_CHARS) {
        if unsafe_on_terminal(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if s.chars().nth(QUOTED_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// `s` as an error quotes it: its [`prefix`] in backticks, with its length when cut.
pub fn quote(s: &str) -> String {
    if s.chars().nth(QUOTED_CHARS).is_some() {
        format!("`{}` ({} bytes)", prefix(s), s.len())
    } else {
        format!("`{}`", prefix(s))
    }
}

/// `s` cut to at most `max_bytes` (at a character boundary), with a marker saying how long it
/// was, for strings that are stored and shown again (a worker's failure reason).
pub fn truncate(s: &str, max_bytes: usize) -> String {
    if s.len() <= max_bytes {
        return s.to_string();
    }
    let mut end = max_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [cut: {} bytes in all]", &s[..end], s.len())
}

/// Whether `c` can change how a terminal shows what follows it, so a string from elsewhere
/// could spoof a table row or a log line: C0 and C1 controls (escapes, carriage returns,
/// newlines), the bidirectional-text controls (U+202E turns the rest of a line around) and the
/// Unicode line and paragraph separators.
pub fn unsafe_on_terminal(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        || matches!(c, '\u{2028}' | '\u{2029}')
}

/// `s` safe on a terminal: every character [`unsafe_on_terminal`] escaped (`\u{1b}`, `\r`,
/// `\u{202e}`), newlines too unless `keep_newlines`.
pub fn escape_controls(s: &str, keep_newlines: bool) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| unsafe_on_terminal(c) && !(keep_newlines && c == '\n');
    if !s.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_short_and_plain() {
        assert_eq!(quote("a/b"), "`a/b`");
        assert_eq!(quote("a\u{1b}[2J\r"), "`a\\u{1b}[2J\\r`");
        let quoted = quote(&"x".repeat(100_000));
        assert!(quoted.len() < QUOTED_CHARS + 30, "{quoted}");
        assert!(quoted.ends_with("…` (100000 bytes)"), "{quoted}");
        assert_eq!(prefix(&"é".repeat(70)).chars().count(), QUOTED_CHARS + 1);
    }

    #[test]
    fn truncation_marks_the_cut_and_escaping_leaves_text_alone() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("ééé", 3), "é… [cut: 6 bytes in all]");
        assert_eq!(escape_controls("plain text", false), "plain text");
        assert_eq!(escape_controls("a\u{1b}[31mb\rc\nd", false), "a\\u{1b}[31mb\\rc\\nd");
        assert_eq!(escape_controls("a\nb\r", true), "a\nb\\r");
    }

    #[test]
    fn bidi_controls_and_line_separators_are_escaped_too() {
        assert_eq!(escape_controls("job\u{202e}lmth.exe", false), "job\\u{202e}lmth.exe");
        assert_eq!(escape_controls("a\u{2028}b\u{2029}c", true), "a\\u{2028}b\\u{2029}c");
        assert_eq!(escape_controls("\u{2066}x\u{2069}\u{200f}\u{85}", false), "\\u{2066}x\\u{2069}\\u{200f}\\u{85}");
        assert_eq!(prefix("a\u{202d}b"), "a\\u{202d}b");
        assert_eq!(escape_controls("naïve — ok", false), "naïve — ok");
    }
}
