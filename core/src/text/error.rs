//! The text module's errors: a token id GPT-2 cannot decode, a bad line of a text-form JSONL
//! (named by `file:line` and field), and records and predictions that cannot make
//! gpt2_decode.py's files.

use std::fmt;
use std::path::{Path, PathBuf};

use super::bpe::VOCAB_SIZE;

/// A token id past GPT-2's vocabulary: encoder.py's `decode` would raise `KeyError` on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("token id {token} at index {index} is outside GPT-2's vocabulary (0..{VOCAB_SIZE})")]
pub struct UnknownToken {
    pub token: u32,
    /// Its position in the decoded sequence.
    pub index: usize,
}

/// What is wrong with one line of a text-form JSONL (`{"context": "...", "completion": "..."}`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextLineFault {
    #[error("line is not valid UTF-8")]
    InvalidUtf8,
    #[error("empty line")]
    Empty,
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("not a JSON object")]
    NotAnObject,
    #[error("field `{0}` is missing")]
    MissingField(&'static str),
    #[error("field `{field}` must be a string, not {value}")]
    NotAString { field: &'static str, value: String },
    #[error("field `context` encodes to no tokens: there is nothing to condition on")]
    EmptyContext,
    #[error("line is {bytes} bytes, over the limit of {limit}")]
    LineTooLong { bytes: usize, limit: usize },
    #[error("field `context` encodes to {tokens} tokens, over the limit of {limit}")]
    ContextTooLong { tokens: usize, limit: usize },
}

/// A text-form fault with its place: `file:line` (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextLineError {
    pub line: usize,
    pub fault: TextLineFault,
}

/// A text-form JSONL that cannot be taken as a whole.
#[derive(Debug, thiserror::Error)]
pub enum TextDataError {
    #[error("cannot read {}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{} is a directory, not a JSONL file", .path.display())]
    IsADirectory { path: PathBuf },
    #[error("{} holds no records", .path.display())]
    NoRecords { path: PathBuf },
    #[error("{} has more than {limit} lines", .path.display())]
    TooManyLines { path: PathBuf, limit: usize },
    #[error("{}", BadLines(.path, .errors, *.total))]
    BadLines { path: PathBuf, errors: Vec<TextLineError>, total: usize },
}

struct BadLines<'a>(&'a Path, &'a [TextLineError], usize);

impl fmt::Display for BadLines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let BadLines(path, errors, total) = self;
        write!(f, "{} has {total} bad line(s):", path.display())?;
        for e in errors.iter() {
            write!(f, "\n  {}:{}: {}", path.display(), e.line, e.fault)?;
        }
        if *total > errors.len() {
            write!(f, "\n  ... and {} more", total - errors.len())?;
        }
        Ok(())
    }
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
}
