//! The core's errors: broken decoding rules, bad test JSONL lines, bad predictions lines, and
//! failed writes. Each names what it concerns: the flag, or the file, line and field.

use std::fmt;
use std::path::{Path, PathBuf};

/// One variant per validation rule, each naming the parameter it concerns.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    #[error("--beam must be at least 1 (got {0})")]
    BeamZero(usize),
    #[error("--beam {beam} exceeds the vocabulary size {vocab}")]
    BeamTooLarge { beam: usize, vocab: usize },
    #[error("--eval_len must be at least 1 (got {0})")]
    EvalLenZero(usize),
    #[error("--seq_len {seq_len} must exceed --eval_len {eval_len} so the context keeps at least one token")]
    NoRoomForContext { seq_len: usize, eval_len: usize },
    #[error("--seq_len {seq_len} exceeds the model's {n_positions} positions")]
    SeqLenPastPositions { seq_len: usize, n_positions: usize },
    #[error("--length_penalty must be a finite number (got {0})")]
    LengthPenaltyNotFinite(f64),
    #[error("--repetition_penalty must be a finite number above 0 (got {0})")]
    RepetitionPenaltyInvalid(f64),
    #[error("--eos_token_id {id} is outside the vocabulary (0..{vocab})")]
    EosOutOfVocab { id: u32, vocab: usize },
    #[error("--{name} {value} does not fit the wire format (at most {max})")]
    TooLargeForWire { name: &'static str, value: usize, max: u32 },
}

/// What is wrong with one line of a test JSONL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineFault {
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
    #[error("field `{0}` must be an array of token ids")]
    NotAnArray(&'static str),
    /// The text form's fields are strings (gpt2_encode.py's input).
    #[error("field `{field}` must be a string, not {value}")]
    NotAString { field: &'static str, value: String },
    #[error("field `{field}`: element {index} is not a non-negative integer token id: {value}")]
    NotATokenId { field: &'static str, index: usize, value: String },
    #[error("field `{field}`: token id {id} at index {index} is outside the vocabulary (0..{vocab})")]
    OutOfVocab { field: &'static str, index: usize, id: u64, vocab: usize },
    #[error("field `context` is empty (no tokens): there is nothing to condition on")]
    EmptyContext,
    #[error("line is {bytes} bytes, over the limit of {limit}")]
    LineTooLong { bytes: usize, limit: usize },
    #[error("field `context` has {tokens} tokens, over the limit of {limit}")]
    ContextTooLong { tokens: usize, limit: usize },
}

/// A fault with its place: `file:line` (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub fault: LineFault,
}

/// A test JSONL that cannot be taken as a whole.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{} is a directory, not a JSONL file", .path.display())]
    IsADirectory { path: PathBuf },
    #[error("{} holds no records", .path.display())]
    NoRecords { path: PathBuf },
    #[error("{} has more than {limit} lines", .path.display())]
    TooManyLines { path: PathBuf, limit: usize },
    #[error("{}", BadLines(.path, .errors, *.total))]
    BadLines { path: PathBuf, errors: Vec<LineError>, total: usize },
}

/// Most line errors kept in full; the rest are only counted.
pub const MAX_REPORTED_ERRORS: usize = 20;

struct BadLines<'a>(&'a Path, &'a [LineError], usize);

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

/// A predictions JSONL that cannot be read, or does not cover its data.
#[derive(Debug, thiserror::Error)]
pub enum PredictionsError {
    #[error("cannot read {}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}:{line}: {detail}", .path.display())]
    BadLine { path: PathBuf, line: usize, detail: String },
    #[error("{}:{line}: id {id} appears again (first on line {first_line})", .path.display())]
    DuplicateId { path: PathBuf, line: usize, id: usize, first_line: usize },
    #[error("{}:{line}: id {id} is not in the data, which has {records} line(s) (ids 0..{records})", .path.display())]
    UnknownId { path: PathBuf, line: usize, id: usize, records: usize },
    #[error("{}: no prediction for id {id}{}", .path.display(), more_missing(*.missing))]
    MissingId { path: PathBuf, id: usize, missing: usize },
    #[error("{}:{line}: id {id} follows id {previous}: ids must be strictly ascending", .path.display())]
    OutOfOrder { path: PathBuf, line: usize, id: usize, previous: usize },
}

fn more_missing(missing: usize) -> String {
    if missing > 1 {
        format!(" ({missing} ids missing in all)")
    } else {
        String::new()
    }
}

/// A predictions file that could not be written; nothing partial is left under its name.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {source}", .path.display())]
pub struct WriteError {
    pub path: PathBuf,
    pub source: std::io::Error,
}
