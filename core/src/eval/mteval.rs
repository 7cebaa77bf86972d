//! The mteval-v13a tokenisation as e2e-metrics' `metrics/pymteval.py` performs it before BLEU
//! and NIST: SGML entities decoded, punctuation split off (a period or comma only when not
//! between digits, a dash after a digit), whitespace collapsed. Case is kept here; the
//! n-gram counts lowercase (see [`lowercase_tokens`]).

use std::sync::OnceLock;

use regex::Regex;

use super::pystr::{is_py_space, py_strip};

/// The tokens pymteval's `tokenize` gives for one sentence.
///
/// An empty or all-whitespace sentence gives one empty token, as Python's
/// `''.split(' ')` does; BLEU and NIST count it as a word of length one.
pub fn mteval_tokenize(sentence: &str) -> Vec<String> {
    let collapsed = collapse_whitespace(&v13a_spaced(sentence));
    py_strip(&collapsed).split(' ').map(str::to_string).collect()
}

/// mteval-v13a's tokenisation up to the split into words, as pymteval and Moses'
/// `multi-bleu-detok.perl` both apply it (ASCII rules, so characters and bytes agree): markup
/// undone, the punctuation of [`is_split_punctuation`] padded with spaces, then `.` and `,`
/// split from non-digits and `-` from a digit before it.
pub(crate) fn v13a_spaced(text: &str) -> String {
    let s = text.replace("<skipped>", "").replace("-\n", "").replace('\n', " ");
    // Sequential, in this order, so "&amp;lt;" becomes "<" as it does in pymteval.
    let s = s.replace("&quot;", "\"").replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">");
    let mut padded = String::with_capacity(s.len() * 2 + 2);
    padded.push(' ');
    for c in s.chars() {
        if is_split_punctuation(c) {
            padded.push(' ');
            padded.push(c);
            padded.push(' ');
        } else {
            padded.push(c);
        }
    }
    padded.push(' ');
    let rules = rules();
    let s = rules.period_comma_after.replace_all(&padded, "$1 $2 ");
    let s = rules.period_comma_before.replace_all(&s, " $1 $2");
    rules.dash_after_digit.replace_all(&s, "$1 $2 ").into_owned()
}

/// The tokens as the n-gram counts see them (`str.lower()` of each).
pub fn lowercase_tokens(tokens: &[String]) -> Vec<String> {
    tokens.iter().map(|t| t.to_lowercase()).collect()
}

/// The ASCII punctuation pymteval's first regex class pads with spaces: `{|}~ [\]^_\``,
/// space to `&`, `(` to `+`, `:` to `@`, and `/`. Not `'`, `,`, `-` or `.`.
fn is_split_punctuation(c: char) -> bool {
    matches!(c, '{'..='~' | '['..='`' | ' '..='&' | '('..='+' | ':'..='@' | '/')
}

/// `re.sub(r'\s+', ' ', s)` with Python's (Unicode) whitespace.
fn collapse_whitespace(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_space = false;
    for c in s.chars() {
        if is_py_space(c) {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            out.push(c);
            in_space = false;
        }
    }
    out
}

struct Rules {
    period_comma_after: Regex,
    period_comma_before: Regex,
    dash_after_digit: Regex,
}

fn rules() -> &'static Rules {
    static RULES: OnceLock<Rules> = OnceLock::new();
    // The patterns are fixed-width pairs, so the regex crate's left-to-right, non-overlapping
    // replacement visits exactly the matches Python's re.sub does.
    RULES.get_or_init(|| Rules {
        period_comma_after: Regex::new(r"([^0-9])([.,])").expect("static regex"),
        period_comma_before: Regex::new(r"([.,])([^0-9])").expect("static regex"),
        dash_after_digit: Regex::new(r"([0-9])(-)").expect("static regex"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(s: &str) -> Vec<String> {
        mteval_tokenize(s)
    }

    #[test]
    fn matches_pymteval() {
        // Expected values from e2e-metrics' pymteval NGramScore.tokenize under Python 3.11.
        assert_eq!(
            tok("The Eagle's price is £20-25, 3.5 stars."),
            ["The", "Eagle's", "price", "is", "£20", "-", "25", ",", "3.5", "stars", "."]
        );
        assert_eq!(
            tok("a..b 1,000 x,y (ok) &amp;lt; &quot;q&quot;"),
            ["a", ".", ".", "b", "1,000", "x", ",", "y", "(", "ok", ")", "<", "\"", "q", "\""]
        );
        assert_eq!(tok(""), [""]);
        assert_eq!(tok("  "), [""]);
        assert_eq!(tok("café-bar 5-star non-stop"), ["café-bar", "5", "-", "star", "non-stop"]);
    }
}
