//! nltk 3.5's `word_tokenize(text)`, which eval.py runs on every line before BLEU NLTK, METEOR
//! and TER: Punkt's English sentences ([`super::punkt`]), each cut by the improved Treebank
//! rules ([`super::treebank`]), the tokens concatenated.
//!
//! Text in gpt2_decode.py's `--tokenize` form (words and single other characters, one space
//! apart: what microsoft/LoRA's README scores) needs no Punkt model: a sentence break there
//! falls on a space between whole tokens, and no Treebank rule then acts differently on the
//! two sides than on the whole (checked against nltk on both test sets and 40,000 random
//! lines of that form). Other text needs the model; without it there is no result, never a
//! guess.

use super::punkt::sentences;
use super::punkt_params::{PunktParams, PunktUnavailable};
use super::treebank::treebank_tokenize;

/// `word_tokenize` with the Punkt model it needs (or why there is none).
#[derive(Debug, Clone)]
pub struct WordTokenizer {
    punkt: Result<PunktParams, PunktUnavailable>,
}

impl WordTokenizer {
    pub fn new(punkt: Result<PunktParams, PunktUnavailable>) -> Self {
        Self { punkt }
    }

    /// The tokens of `text`.
    pub fn tokenize(&self, text: &str) -> Result<Vec<String>, PunktUnavailable> {
        match &self.punkt {
            Ok(params) => Ok(sentences(text, params).into_iter().flat_map(treebank_tokenize).collect()),
            Err(_) if is_split_form(text) => Ok(treebank_tokenize(text)),
            Err(why) => Err(why.clone()),
        }
    }

    /// eval.py's `' '.join(nltk.word_tokenize(text))`.
    pub fn joined(&self, text: &str) -> Result<String, PunktUnavailable> {
        Ok(self.tokenize(text)?.join(" "))
    }
}

/// Whether `text` is in gpt2_decode.py's `--tokenize` form: tokens one ASCII space apart, each
/// a run of word characters (Python's `\w`) or one other character that is not whitespace.
pub fn is_split_form(text: &str) -> bool {
    let word = |c: char| c == '_' || is_py_word(c);
    text.split(' ').all(|token| {
        let mut chars = token.chars();
        match (chars.next(), chars.next()) {
            (None, _) => false,
            (Some(c), None) => !super::super::pystr::is_py_space(c),
            (Some(c), Some(_)) => word(c) && token.chars().all(word),
        }
    }) || text.is_empty()
}

/// Python's `\w` (letters and numbers, categories L and N; `_` apart).
fn is_py_word(c: char) -> bool {
    static WORD: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let word = WORD.get_or_init(|| regex::Regex::new(r"^[\p{L}\p{N}]$").unwrap_or_else(|e| panic!("word class: {e}")));
    let mut buf = [0u8; 4];
    word.is_match(c.encode_utf8(&mut buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_form_is_told_apart() {
        for text in ["the airport , ( abilene ) is in texas .", "a", "", "x ² ½ é_1 ' s"] {
            assert!(is_split_form(text), "{text:?}");
        }
        for text in ["two  spaces", " lead", "trail ", "it's", "end.", "tab\there", "a \u{a0} b"] {
            assert!(!is_split_form(text), "{text:?}");
        }
        let none = WordTokenizer::new(Err(PunktUnavailable("no model".into())));
        assert_eq!(none.joined("mr . smith said \" hi \" .").as_deref(), Ok("mr . smith said `` hi `` ."));
        assert_eq!(none.joined("Mr. Smith."), Err(PunktUnavailable("no model".into())));
    }
}
