//! GPT-2 text: BPE decoding and encoding as microsoft/LoRA's encoder.py, and gpt2_decode.py's files.
//!
//! - [`bpe`]: `encode` / `decode` on the GPT-2 vocabulary (tiktoken's r50k_base);
//! - [`formatted`]: a text-form JSONL read into records as `gpt2_encode.py` would encode it,
//!   and [`form`] to tell the text form from the ids form;
//! - [`e2e_files`]: the reference and prediction files gpt2_decode.py writes, with
//!   [`postprocess`] (its cuts, `--lower`, `--tokenize`) and [`pystr`] (Python's whitespace,
//!   `\w` and `lower()`, which those rules are written in);
//! - [`multi_ref_files`]: its WebNLG and DART reference files (`--ref_type webnlg|dart
//!   --ref_num N`), [`categories`] its `--filter all|seen|unseen`, and [`task`] which of the
//!   three data sets a job is scored as.

pub mod bpe;
pub mod categories;
pub mod e2e_files;
pub mod error;
pub mod form;
pub mod formatted;
pub mod ids_form;
pub mod multi_ref_files;
pub mod postprocess;
pub mod pystr;
pub mod task;

pub use bpe::{decode, decode_bytes, encode, ENDOFTEXT, ENDOFTEXT_ID, VOCAB_SIZE};
pub use categories::{keep_mask, parse_categories, py_truthy, read_categories, CategoryFilter};
pub use e2e_files::{unscorable_reference, E2eReferences, E2eTexts, ReferenceGroup};
pub use error::{E2eTextError, UnknownToken};
pub use form::{detect_file_form, detect_form, line_form, JsonlForm};
pub use formatted::{encode_pair, parse_text_line, parse_text_records, read_text_records, EncodeOptions};
pub use ids_form::{encode_text_jsonl, ids_jsonl};
pub use multi_ref_files::reference_file_name;
pub use postprocess::{cut_at_end, post_process, PostProcess};
pub use pystr::{is_py_space, py_lower, py_split, py_strip, standard_tokenize};
pub use task::{ScoreTask, README_REF_NUM};

#[cfg(test)]
mod tests;
