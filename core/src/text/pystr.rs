//! Python's `str` rules that gpt2_decode.py's output depends on: `str.isspace` (what `strip()`
//! and `split()` remove, which is more than Rust's `char::is_whitespace`), `re`'s `\w`, and
//! `str.lower()`. All three were compared with CPython 3.11 (Unicode 14.0) over every code
//! point: they agree on every character assigned in Unicode 14.0; only characters added
//! since (which CPython 3.11 treats as unassigned) can differ.

use std::sync::LazyLock;

use regex::Regex;

/// CPython's `str.isspace()` (bidirectional class WS, B or S, or category Zs). Unlike Rust's
/// `char::is_whitespace`, it holds for the separators U+001C..U+001F.
pub fn is_py_space(c: char) -> bool {
    matches!(
        c,
        '\t'..='\r'
            | '\u{1c}'..='\u{20}'
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

/// Python's `s.strip()`.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

/// Python's `s.split()`: the runs of non-space characters.
pub fn py_split(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_py_space).filter(|piece| !piece.is_empty())
}

/// Python's `s.lower()`. Rust's `to_lowercase` follows the same Unicode rules, the final sigma
/// (`ΣΑΣ` to `σας`) and the two-character `İ` to `i̇` included.
pub fn py_lower(s: &str) -> String {
    s.to_lowercase()
}

/// A run of `re`'s `\w` characters (for `str` patterns: `str.isalnum()` or `_`, which is
/// exactly categories L* and N* plus `_`), or one character that is not one.
static WORD_OR_OTHER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[\p{L}\p{N}_]+|[^\p{L}\p{N}_]").expect("a constant, valid pattern"));

/// gpt2_decode.py's `stardard_tokenize`: `' '.join(re.split('(\W)', s))`, then split on
/// whitespace and joined by single spaces. So: each run of word characters and each other
/// non-space character is a token, and the tokens are joined by one space.
pub fn standard_tokenize(s: &str) -> String {
    let tokens: Vec<&str> =
        WORD_OR_OTHER.find_iter(s).map(|m| m.as_str()).filter(|t| !t.chars().all(is_py_space)).collect();
    tokens.join(" ")
}
