//! Client strings in error messages: a short prefix with control characters escaped, so an
//! error never echoes a huge or hostile string back to a caller, into a log or onto a terminal.

/// Characters of a client string an error message shows at most.
pub const QUOTED_CHARS: usize = 64;

/// The first [`QUOTED_CHARS`] characters of `s`, control characters escaped, `…` when cut.
pub fn prefix(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().take(QUOTED_CHARS) {
        if c.is_control() {
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
}
