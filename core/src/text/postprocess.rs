//! How gpt2_decode.py turns one decoded text into a line of its files: cut at the first
//! `<|endoftext|>`, then at the first blank line (`"\n\n"`), then strip; and, on writing,
//! `--lower` (first) and `--tokenize`.

use super::bpe::ENDOFTEXT;
use super::pystr::{py_lower, py_strip, standard_tokenize};

/// gpt2_decode.py's `--tokenize` and `--lower` flags (both off by default, as in the script
/// and in microsoft/LoRA's README).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PostProcess {
    /// `--tokenize`: every non-word character its own token, tokens joined by one space.
    pub tokenize: bool,
    /// `--lower`: Python's `str.lower()`, applied before tokenizing.
    pub lower: bool,
}

/// `text.split('<|endoftext|>')[0].split('\n\n')[0].strip()`, the script's rule for both
/// predictions and references. Zero padding after EOS is cut with it; a prediction without
/// EOS keeps its trailing zeros, which decode to `!`.
pub fn cut_at_end(text: &str) -> &str {
    let text = text.split(ENDOFTEXT).next().unwrap_or_default();
    let text = text.split("\n\n").next().unwrap_or_default();
    py_strip(text)
}

/// The script's `post_process(sent, is_tokenize, is_lower)`.
pub fn post_process(sent: &str, options: PostProcess) -> String {
    let sent = if options.lower { py_lower(sent) } else { sent.to_owned() };
    if options.tokenize {
        standard_tokenize(&sent)
    } else {
        sent
    }
}
