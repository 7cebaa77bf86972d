//! GPT-2's byte-level BPE, as microsoft/LoRA's encoder.py encodes and decodes, on tiktoken's
//! r50k_base (the same 50,257 tokens and merges, embedded in the crate, built once).

use std::sync::LazyLock;

use tiktoken_rs::CoreBPE;

use super::error::UnknownToken;

/// GPT-2's vocabulary: ids `0..VOCAB_SIZE` decode, anything else is an error.
pub const VOCAB_SIZE: usize = 50257;

/// `<|endoftext|>`, which gpt2_encode.py appends as both BOS and EOS.
pub const ENDOFTEXT_ID: u32 = 50256;

/// The text of [`ENDOFTEXT_ID`], where gpt2_decode.py cuts predictions and references.
pub const ENDOFTEXT: &str = "<|endoftext|>";

/// The vocabulary and merges are constants compiled into tiktoken-rs, so building them fails
/// only on a broken build, never on input: every test that encodes would catch it.
static GPT2: LazyLock<CoreBPE> =
    LazyLock::new(|| tiktoken_rs::r50k_base().expect("tiktoken-rs's embedded r50k_base vocabulary loads"));

/// The token ids of `text`, as encoder.py's `encode(text)[0]`. `<|endoftext|>` in the text is
/// plain text here (seven tokens), as in encoder.py, which knows no special tokens.
pub fn encode(text: &str) -> Vec<u32> {
    GPT2.encode_ordinary(text)
}

/// The bytes the tokens stand for, joined: encoder.py's `decode` before its UTF-8 step.
pub fn decode_bytes(tokens: &[u32]) -> Result<Vec<u8>, UnknownToken> {
    if let Some((index, &token)) = tokens.iter().enumerate().find(|(_, &t)| t as usize >= VOCAB_SIZE) {
        return Err(UnknownToken { token, index });
    }
    // Every id is now in the vocabulary, so tiktoken's own lookup cannot fail; its error is
    // still mapped rather than unwrapped.
    GPT2.decode_bytes(tokens).map_err(|e| UnknownToken {
        token: e.token,
        index: tokens.iter().position(|&t| t == e.token).unwrap_or_default(),
    })
}

/// The text of `tokens`, as encoder.py's `decode`: the bytes joined, then
/// `.decode('utf-8', errors='replace')`. Rust's lossy decoding puts one U+FFFD per maximal
/// ill-formed subpart, as Python's `replace` handler does (`b"\xe2\x82"` gives one, `b"\xf0\x80"`
/// two, `b"\xed\xa0\x80"` three; checked against CPython 3.11 in the tests).
pub fn decode(tokens: &[u32]) -> Result<String, UnknownToken> {
    let bytes = decode_bytes(tokens)?;
    Ok(match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}
