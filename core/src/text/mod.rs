//! GPT-2 text: BPE decoding and encoding as microsoft/LoRA's encoder.py, and gpt2_decode.py's files.
//!
//! - [`bpe`]: `encode` / `decode` on the GPT-2 vocabulary (tiktoken's r50k_base);
//! - [`formatted`]: a text-form JSONL read into records as `gpt2_encode.py` would encode it,
//!   and [`form`] to tell the text form from the ids form;
//! - [`e2e_files`]: the reference and prediction files gpt2_decode.py writes, with
//!   [`postprocess`] (its cuts, `--lower`, `--tokenize`) and [`pystr`] (Python's whitespace,
//!   `\w` and `lower()`, which those rules are written in).

pub mod bpe;
pub mod e2e_files;
pub mod error;
pub mod form;
pub mod formatted;
pub mod postprocess;
pub mod pystr;

pub use bpe::{decode, decode_bytes, encode, ENDOFTEXT, ENDOFTEXT_ID, VOCAB_SIZE};
pub use e2e_files::{unscorable_reference, E2eReferences, E2eTexts, ReferenceGroup};
pub use error::{E2eTextError, UnknownToken};
pub use form::{detect_file_form, detect_form, line_form, JsonlForm};
pub use formatted::{encode_pair, parse_text_line, parse_text_records, read_text_records, EncodeOptions};
pub use postprocess::{cut_at_end, post_process, PostProcess};
pub use pystr::{is_py_space, py_lower, py_split, py_strip, standard_tokenize};

#[cfg(test)]
mod tests;
