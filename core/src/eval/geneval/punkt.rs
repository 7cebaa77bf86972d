//! nltk 3.5's Punkt sentence splitter as `sent_tokenize` runs it (`PunktSentenceTokenizer
//! .tokenize(text)`, realigning boundaries), re-stated from its behaviour: candidate breaks
//! are the places a `.`, `?` or `!` ends some word material before punctuation or another
//! token; each candidate's context is cut into Punkt's words, annotated (sentence-end marks,
//! abbreviations, ellipses; then collocations, the orthographic heuristic, initials and
//! numbers), and it is a break when some word but the last ends a sentence. The trained
//! parameters (abbreviations, collocations, sentence starters, orthographic contexts) are the
//! model's data, loaded by [`super::punkt_params`].

use std::sync::OnceLock;

use fancy_regex::Regex;

use super::super::pystr::py_strip;
use super::punkt_params::PunktParams;
use crate::text::py_lower;

/// Python `\s` and `\S` (str patterns), as in [`super::treebank`].
const S: &str = r"[\t-\r\x1c-\x20\x85\xa0\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]";
const NS: &str = r"[^\t-\r\x1c-\x20\x85\xa0\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]";
/// Punkt's `_re_non_word_chars`.
const NON_WORD: &str = r#"(?:[?!)";}\]\*:@'\({\[])"#;
/// Punkt's `_re_multi_char_punct`.
const MULTI_CHAR: &str = r"(?:\-{2,}|\.{2,}|(?:\.{S}){2,}\.)";
/// Punkt's `_re_word_start`.
const WORD_START: &str = r#"[^\("`{\[:;&\#\*@\)}\]\-,]"#;

const ORTHO_BEG_UC: u32 = 1 << 1;
const ORTHO_MID_UC: u32 = 1 << 2;
const ORTHO_UNK_UC: u32 = 1 << 3;
const ORTHO_BEG_LC: u32 = 1 << 4;
const ORTHO_MID_LC: u32 = 1 << 5;
const ORTHO_UNK_LC: u32 = 1 << 6;
const ORTHO_UC: u32 = ORTHO_BEG_UC + ORTHO_MID_UC + ORTHO_UNK_UC;
const ORTHO_LC: u32 = ORTHO_BEG_LC + ORTHO_MID_LC + ORTHO_UNK_LC;

struct Patterns {
    words: Regex,
    period_context: Regex,
    boundary_realignment: Regex,
    numeric: Regex,
    initial: Regex,
}

fn compile(pattern: String) -> Regex {
    // Constants of this file; the tests compile every one.
    Regex::new(&pattern).unwrap_or_else(|e| panic!("punkt pattern {pattern:?}: {e}"))
}

fn patterns() -> &'static Patterns {
    static PATTERNS: OnceLock<Patterns> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        let multi = MULTI_CHAR.replace("{S}", S);
        let words =
            format!(r"{multi}|(?={WORD_START}){NS}+?(?={S}|\z|{NON_WORD}|{multi}|,(?=\z|{S}|{NON_WORD}|{multi}))|{NS}");
        let period_context = format!(r"{NS}*[.?!](?=(?P<after_tok>{NON_WORD}|{S}+(?P<next_tok>{NS}+)))");
        Patterns {
            words: compile(words),
            period_context: compile(period_context),
            // MULTILINE `$`: before any newline, or at the end.
            boundary_realignment: compile(format!(r#"^["')\]}}]+?(?:{S}+|(?=--)|(?=\n)|\z)"#)),
            numeric: compile(r"^-?[\.,]?\p{Nd}[\p{Nd},\.-]*\.?(?=\n?\z)".to_string()),
            initial: compile(r"^[\p{L}\p{N}_&&[^\p{Nd}]]\.\z".to_string()),
        }
    })
}

/// One of Punkt's words with its annotations.
#[derive(Debug, Clone)]
struct Token<'t> {
    tok: &'t str,
    /// The lowercased word, numbers as `##number##`.
    typ: String,
    sentbreak: bool,
    abbr: bool,
    ellipsis: bool,
}

impl<'t> Token<'t> {
    fn new(tok: &'t str) -> Self {
        let lower = py_lower(tok);
        let typ = patterns().numeric.replace(&lower, "##number##").into_owned();
        Self { tok, typ, sentbreak: false, abbr: false, ellipsis: false }
    }

    fn period_final(&self) -> bool {
        self.tok.ends_with('.')
    }

    fn type_no_period(&self) -> &str {
        match self.typ.strip_suffix('.') {
            Some(stem) if self.typ.chars().count() > 1 => stem,
            _ => &self.typ,
        }
    }

    fn type_no_sentperiod(&self) -> &str {
        if self.sentbreak {
            self.type_no_period()
        } else {
            &self.typ
        }
    }

    fn first_upper(&self) -> bool {
        self.tok.chars().next().is_some_and(char::is_uppercase)
    }

    fn first_lower(&self) -> bool {
        self.tok.chars().next().is_some_and(char::is_lowercase)
    }

    /// `\.\.+$`.
    fn is_ellipsis(&self) -> bool {
        self.tok.len() >= 2 && self.tok.bytes().all(|b| b == b'.')
    }

    /// `[^\W\d]\.$` from the start: one word character that is not a decimal digit, then `.`.
    fn is_initial(&self) -> bool {
        patterns().initial.is_match(self.tok).unwrap_or(false)
    }
}

/// Punkt's `_tokenize_words`: the words of each non-blank line.
fn tokenize_words(text: &str) -> Vec<Token<'_>> {
    let words = &patterns().words;
    text.split('\n')
        .filter(|line| !py_strip(line).is_empty())
        .flat_map(|line| words.find_iter(line).filter_map(Result::ok).map(|m| Token::new(m.as_str())))
        .collect()
}

/// The first pass: sentence-end marks, ellipses, and period-final words that are or are not
/// known abbreviations.
fn first_pass(token: &mut Token<'_>, params: &PunktParams) {
    let tok = token.tok;
    if matches!(tok, "." | "?" | "!") {
        token.sentbreak = true;
    } else if token.is_ellipsis() {
        token.ellipsis = true;
    } else if token.period_final() && !tok.ends_with("..") {
        let stem = py_lower(&tok[..tok.len() - 1]);
        let last_part = stem.rsplit('-').next().unwrap_or_default();
        if params.abbrev_types.contains(&stem) || params.abbrev_types.contains(last_part) {
            token.abbr = true;
        } else {
            token.sentbreak = true;
        }
    }
}

/// `_ortho_heuristic`: whether `token` starts a sentence by its capitalisation as seen in
/// training, `None` for "unknown".
fn ortho_heuristic(token: &Token<'_>, params: &PunktParams) -> Option<bool> {
    if matches!(token.tok, ";" | ":" | "," | "." | "!" | "?") {
        return Some(false);
    }
    let context = params.ortho(token.type_no_sentperiod());
    if token.first_upper() && context & ORTHO_LC != 0 && context & ORTHO_MID_UC == 0 {
        return Some(true);
    }
    if token.first_lower() && (context & ORTHO_UC != 0 || context & ORTHO_BEG_LC == 0) {
        return Some(false);
    }
    None
}

/// The second pass on `tokens[i]`, looking at `tokens[i + 1]` as the first pass left it.
fn second_pass(tokens: &mut [Token<'_>], i: usize, params: &PunktParams) {
    let (head, tail) = tokens.split_at_mut(i + 1);
    let (Some(first), Some(next)) = (head.last_mut(), tail.first()) else { return };
    if !first.period_final() {
        return;
    }
    let typ = first.type_no_period().to_string();
    let next_typ = next.type_no_sentperiod();
    let is_initial = first.is_initial();
    if params.collocations.contains(&(typ.clone(), next_typ.to_string())) {
        first.sentbreak = false;
        first.abbr = true;
        return;
    }
    if (first.abbr || first.ellipsis) && !is_initial {
        if ortho_heuristic(next, params) == Some(true) {
            first.sentbreak = true;
            return;
        }
        if next.first_upper() && params.sent_starters.contains(next_typ) {
            first.sentbreak = true;
            return;
        }
    }
    if is_initial || typ == "##number##" {
        let starter = ortho_heuristic(next, params);
        if starter == Some(false) {
            first.sentbreak = false;
            first.abbr = true;
            return;
        }
        if starter.is_none() && is_initial && next.first_upper() && params.ortho(next_typ) & ORTHO_LC == 0 {
            first.sentbreak = false;
            first.abbr = true;
        }
    }
}

/// `text_contains_sentbreak`: some word but the last ends a sentence.
fn contains_sentbreak(context: &str, params: &PunktParams) -> bool {
    let mut tokens = tokenize_words(context);
    for token in tokens.iter_mut() {
        first_pass(token, params);
    }
    for i in 0..tokens.len() {
        second_pass(&mut tokens, i, params);
        if tokens[i].sentbreak && i + 1 < tokens.len() {
            return true;
        }
    }
    false
}

/// `_slices_from_text`: byte ranges of the sentences before realignment.
fn slices(text: &str, params: &PunktParams) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut last_break = 0;
    for caps in patterns().period_context.captures_iter(text).filter_map(Result::ok) {
        let (Some(whole), Some(after)) = (caps.get(0), caps.name("after_tok")) else { continue };
        let context = format!("{}{}", whole.as_str(), after.as_str());
        if contains_sentbreak(&context, params) {
            out.push((last_break, whole.end()));
            last_break = caps.name("next_tok").map_or(whole.end(), |next| next.start());
        }
    }
    out.push((last_break, text.trim_end_matches(super::super::pystr::is_py_space).len()));
    out
}

/// `_realign_boundaries`: closing quotes and brackets that open the next slice move back to
/// the sentence they close; empty slices are dropped.
fn realign(text: &str, slices: Vec<(usize, usize)>) -> Vec<(usize, usize)> {
    let slice = |(start, stop): (usize, usize)| if start < stop { &text[start..stop] } else { "" };
    let mut out = Vec::new();
    let mut shift = 0;
    for (k, &(start, stop)) in slices.iter().enumerate() {
        let first = (start + shift, stop);
        let Some(&next) = slices.get(k + 1) else {
            if !slice(first).is_empty() {
                out.push(first);
            }
            continue;
        };
        let found = patterns().boundary_realignment.find(slice(next)).ok().flatten();
        match found {
            Some(m) => {
                let kept = m.as_str().trim_end_matches(super::super::pystr::is_py_space).len();
                out.push((first.0, next.0 + kept));
                shift = m.end();
            }
            None => {
                shift = 0;
                if !slice(first).is_empty() {
                    out.push(first);
                }
            }
        }
    }
    out
}

/// `PunktSentenceTokenizer.tokenize(text)`: the sentences, as slices of `text`.
pub fn sentences<'t>(text: &'t str, params: &PunktParams) -> Vec<&'t str> {
    realign(text, slices(text, params))
        .into_iter()
        .map(|(start, stop)| if start < stop { &text[start..stop] } else { "" })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn toy(path: &str) -> PathBuf {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/conformance/webnlg-dart/punkt-toy")).join(path)
    }

    /// A toy model of our own (nltk_data's English one has no licence to ship), pickled and
    /// in punkt_tab form, and what nltk 3.5 makes of ten texts with it.
    #[test]
    fn sentences_and_tokens_match_nltk_with_a_toy_model() {
        let pickled = PunktParams::load(&toy("toy.pickle")).expect("the pickled toy model");
        let tabbed = PunktParams::load(&toy("toy_tab")).expect("the punkt_tab toy model");
        assert_eq!(pickled, tabbed);
        assert_eq!(pickled.ortho("he"), 2 | 16 | 32);
        assert!(pickled.collocations.contains(&("j".to_string(), "smith".to_string())));
        let tokenizer = super::super::WordTokenizer::new(Ok(pickled.clone()));
        let expected = std::fs::read_to_string(toy("expected.jsonl")).expect("expected.jsonl");
        for line in expected.lines() {
            let case: serde_json::Value = serde_json::from_str(line).expect("JSON");
            let text = case["text"].as_str().expect("text");
            let want: Vec<&str> =
                case["sentences"].as_array().expect("list").iter().filter_map(|s| s.as_str()).collect();
            assert_eq!(sentences(text, &pickled), want, "{text:?}");
            let tokens: Vec<String> = serde_json::from_value(case["tokens"].clone()).expect("tokens");
            assert_eq!(tokenizer.tokenize(text).expect("tokens"), tokens, "{text:?}");
        }
    }

    #[test]
    fn a_broken_model_is_named() {
        let err = PunktParams::load(&toy("expected.jsonl")).expect_err("not a pickle");
        assert!(err.to_string().starts_with("cannot read the Punkt model"), "{err}");
        assert!(PunktParams::load(&toy("missing")).is_err());
    }
}
