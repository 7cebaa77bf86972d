//! The PTB tokenisation pycocoevalcap applies before ROUGE-L, CIDEr and METEOR, in Rust:
//! Stanford CoreNLP 3.4.1's `PTBTokenizer -preserveLines -lowerCase` over all the sentences
//! joined by newlines (so one line's last token may depend on the next line's first
//! character, as in the jar), then pycocoevalcap's removal of punctuation tokens.
//!
//! The rules live in [`super::ptb_rules`]; this file is the scanner that applies them.

use std::sync::OnceLock;

use regex::Regex;

use super::ptb_rules::{rules, Action};

/// The tokens pycocoevalcap drops after tokenising. Bracket tokens come out of the jar
/// lowercased (`-lrb-`), so the upper-case entries here never match; that is its behaviour.
pub const PUNCTUATIONS: [&str; 17] =
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"];

/// Tokenises sentences as pycocoevalcap's `PTBTokenizer.tokenize` does for one call: one
/// space-joined string of kept tokens per sentence, in order.
pub fn ptb_tokenize(sentences: &[&str]) -> Vec<String> {
    // pycocoevalcap replaces newlines inside a caption by spaces before joining.
    let joined = sentences.iter().map(|s| s.replace('\n', " ")).collect::<Vec<_>>().join("\n");
    let output = jar_output(&joined);
    captions_from_jar_output(&output, sentences.len())
}

/// pycocoevalcap's reading of the jar's output: split on `\n`, zip with the sentences (a
/// short output leaves the last sentences out, as `zip` does), drop punctuation tokens.
pub fn captions_from_jar_output(output: &str, sentences: usize) -> Vec<String> {
    output
        .split('\n')
        .take(sentences)
        .map(|line| {
            let kept: Vec<&str> = line
                .trim_end_matches(super::pystr::is_py_space)
                .split(' ')
                .filter(|w| !PUNCTUATIONS.contains(w))
                .collect();
            kept.join(" ")
        })
        .collect()
}

/// What the 3.4.1 jar prints for `text` with `-preserveLines -lowerCase`: the tokens of a
/// line separated by single spaces, a `\n` for each newline of the input.
pub fn jar_output(text: &str) -> String {
    let lexer = lexer();
    let mut out = String::with_capacity(text.len() + 16);
    let mut line_start = true;
    let mut pos = 0;
    while pos < text.len() {
        let (consumed, token) = lexer.next_token(&text[pos..]);
        match token {
            Token::Text(t) => {
                if !line_start {
                    out.push(' ');
                }
                out.push_str(&t.to_lowercase());
                line_start = false;
            }
            Token::Newline => {
                out.push('\n');
                line_start = true;
            }
            Token::Nothing => {}
        }
        pos += consumed;
    }
    out
}

enum Token {
    Text(String),
    Newline,
    Nothing,
}

struct CompiledRule {
    regex: Regex,
    has_trailing: bool,
    action: Action,
}

struct Lexer {
    rules: Vec<CompiledRule>,
}

fn lexer() -> &'static Lexer {
    static LEXER: OnceLock<Lexer> = OnceLock::new();
    LEXER.get_or_init(|| {
        let rules = rules()
            .into_iter()
            .map(|r| {
                let source = match &r.trailing {
                    Some(t) => format!("^({})(?:{})", r.pattern, t),
                    None => format!("^(?:{})", r.pattern),
                };
                // The rule table is fixed at compile time; a bad pattern is a bug caught by
                // every test, not an input error.
                let regex = Regex::new(&source).unwrap_or_else(|e| panic!("PTB rule {source}: {e}"));
                CompiledRule { regex, has_trailing: r.trailing.is_some(), action: r.action }
            })
            .collect();
        Lexer { rules }
    })
}

/// Words made of ASCII letters that no rule treats specially; the scanner's answer for
/// them is always the word itself, so it is skipped (most E2E tokens are such words).
fn plain_word_len(rest: &str) -> Option<usize> {
    let bytes = rest.as_bytes();
    let len = bytes.iter().take_while(|b| b.is_ascii_alphabetic()).count();
    if len == 0 || !matches!(bytes.get(len), None | Some(b' ') | Some(b'\n')) {
        return None;
    }
    let word = rest[..len].to_ascii_lowercase();
    let special = ["cannot", "gonna", "gotta", "lemme", "gimme", "wanna"];
    (!special.contains(&word.as_str())).then_some(len)
}

impl Lexer {
    /// The bytes consumed at the start of `rest` and the token they make.
    fn next_token(&self, rest: &str) -> (usize, Token) {
        if let Some(len) = plain_word_len(rest) {
            return (len, Token::Text(rest[..len].to_string()));
        }
        // Longest match over all rules (trailing context included), first rule on a tie.
        let mut best: Option<(usize, usize, &CompiledRule)> = None;
        for rule in &self.rules {
            let Some(caps) = rule.regex.captures(rest) else { continue };
            let total = caps.get(0).map_or(0, |m| m.end());
            let token_len = if rule.has_trailing { caps.get(1).map_or(0, |m| m.end()) } else { total };
            if token_len == 0 {
                continue;
            }
            if best.is_none_or(|(best_total, _, _)| total > best_total) {
                best = Some((total, token_len, rule));
            }
        }
        let Some((_, len, rule)) = best else {
            // Untokenizable (3.4.1's default, firstDelete): the character is dropped.
            let skip = rest.chars().next().map_or(1, char::len_utf8);
            return (skip, Token::Nothing);
        };
        let text = &rest[..len];
        match rule.action {
            Action::Keep => (len, Token::Text(text.to_string())),
            Action::Replace(r) => (len, Token::Text(r.to_string())),
            Action::Prefix(n) => (n, Token::Text(text[..n].to_string())),
            Action::DuplicatePeriod => (len - 1, Token::Text(text.to_string())),
            Action::Quote(left) => (len, Token::Text(latex_quotes(text, left))),
            Action::Currency => (len, Token::Text(currency(text))),
            Action::Fraction => (len, Token::Text(fraction(text))),
            Action::NonBreakingSpace => (len, Token::Text(text.replace(' ', "\u{a0}"))),
            Action::Phone => {
                (len, Token::Text(text.replace(' ', "\u{a0}").replace('(', "-LRB-").replace(')', "-RRB-")))
            }
            Action::Hyphens => {
                let token = if (3..=4).contains(&len) { "--".to_string() } else { text.to_string() };
                (len, Token::Text(token))
            }
            Action::Skip if text.contains(['\n', '\r', '\x0b', '\x0c', '\u{85}', '\u{2028}', '\u{2029}']) => {
                (len, Token::Newline)
            }
            Action::Skip => (len, Token::Nothing),
        }
    }
}

fn latex_quotes(text: &str, left: bool) -> String {
    let (single, double) = if left { ("`", "``") } else { ("'", "''") };
    let s = text.replace("&apos;", single).replace('\'', single).replace("&quot;", double).replace('"', double);
    s.chars()
        .map(|c| match c {
            '\u{91}' | '\u{2018}' | '\u{201B}' | '\u{2039}' => "`".to_string(),
            '\u{92}' | '\u{2019}' | '\u{203A}' => "'".to_string(),
            '\u{93}' | '\u{201C}' | '\u{AB}' => "``".to_string(),
            '\u{94}' | '\u{201D}' | '\u{BB}' => "''".to_string(),
            other => other.to_string(),
        })
        .collect()
}

fn currency(text: &str) -> String {
    text.replace('\u{a2}', "cents").replace('\u{a3}', "#").replace(['\u{80}', '\u{a4}', '\u{20a0}', '\u{20ac}'], "$")
}

fn fraction(text: &str) -> String {
    // U+2154 (two thirds) is left alone: 3.4.1 maps U+2153 twice and never U+2154.
    text.replace('\u{bc}', "1/4").replace('\u{bd}', "1/2").replace('\u{be}', "3/4").replace('\u{2153}', "1/3")
}
