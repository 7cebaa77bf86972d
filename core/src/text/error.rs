//! The text module's errors: a token id GPT-2 cannot decode, and records and predictions that
//! cannot make gpt2_decode.py's files. A bad line of a text-form JSONL is a
//! [`crate::LineFault`], as for the ids form.

use super::bpe::VOCAB_SIZE;

/// A token id past GPT-2's vocabulary: encoder.py's `decode` would raise `KeyError` on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("token id {token} at index {index} is outside GPT-2's vocabulary (0..{VOCAB_SIZE})")]
pub struct UnknownToken {
    pub token: u32,
    /// Its position in the decoded sequence.
    pub index: usize,
}

/// Records and predictions from which gpt2_decode.py's files cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum E2eTextError {
    /// gpt2_decode.py raises `IndexError` on an id past its input file.
    #[error("prediction for id {id}, which is not a record of the data")]
    UnknownId { id: usize },
    #[error("the prediction for id {id} cannot be decoded: {source}")]
    BadPrediction { id: usize, source: UnknownToken },
    #[error("the completion of record {id} cannot be decoded: {source}")]
    BadCompletion { id: usize, source: UnknownToken },
    /// gpt2_decode.py raises `KeyError: 'sample'` when a context has no prediction.
    #[error("no prediction for the context {context:?} (record {first_id} and the others sharing it)")]
    NoPrediction { context: String, first_id: usize },
    /// gpt2_decode.py raises `KeyError: 'cate'` here.
    #[error(
        "line {} has no `cate` field, which --filter {filter} reads (WebNLG's text form has one on every line, \
         as microsoft/LoRA's format_converting_webnlg.py writes it; DART's and E2E's have none)", .id + 1
    )]
    NoCategory { id: usize, filter: super::categories::CategoryFilter },
}
