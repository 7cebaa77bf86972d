//! Quoting client strings in error messages: a short prefix, control characters escaped, so an
//! error never echoes a huge or hostile string back (or into a log).

/// Characters of a client string an error message quotes at most.
pub const QUOTED_CHARS: usize = 64;

/// `s` in backticks, cut to [`QUOTED_CHARS`] characters (with `…` and its length in bytes when
/// cut) and with control characters escaped.
pub fn quote(s: &str) -> String {
    let mut out = String::from("`");
    for c in s.chars().take(QUOTED_CHARS) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push('`');
    if s.chars().nth(QUOTED_CHARS).is_some() {
        out.push_str(&format!("… ({} bytes)", s.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_short_and_plain() {
        assert_eq!(quote("a/b"), "`a/b`");
        assert_eq!(quote("a\u{1b}[2J\r"), "`a\\u{1b}[2J\\r`");
        let long = "x".repeat(100_000);
        let quoted = quote(&long);
        assert!(quoted.len() < QUOTED_CHARS + 30, "{quoted}");
        assert!(quoted.ends_with("… (100000 bytes)"), "{quoted}");
    }
}
