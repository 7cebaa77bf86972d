//! Checks a test JSONL (`{"context": [ids], "completion": [ids]}` per line) into records.
//! Every bad line is reported with its file, line number and field; nothing is half-accepted.

use std::fmt;
use std::path::{Path, PathBuf};

/// One checked input line. Its id is its 0-based line number, as the reference numbers them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: usize,
    pub context: Vec<u32>,
}

/// What is wrong with one line.
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
    #[error("field `{field}`: element {index} is not a non-negative integer token id: {value}")]
    NotATokenId { field: &'static str, index: usize, value: String },
    #[error("field `{field}`: token id {id} at index {index} is outside the vocabulary (0..{vocab})")]
    OutOfVocab { field: &'static str, index: usize, id: u64, vocab: usize },
    #[error("field `context` is empty: there is nothing to condition on")]
    EmptyContext,
    #[error("line is {bytes} bytes, over the limit of {limit}")]
    LineTooLong { bytes: usize, limit: usize },
    #[error("field `context` has {tokens} tokens, over the limit of {limit}")]
    ContextTooLong { tokens: usize, limit: usize },
}

/// What a line may hold: the model's vocabulary, and size limits a service sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordLimits {
    pub vocab_size: usize,
    pub max_lines: usize,
    pub max_line_bytes: usize,
    pub max_context_tokens: usize,
}

impl RecordLimits {
    /// Only the vocabulary: what `lorabeam run` checks.
    pub fn vocab(vocab_size: usize) -> Self {
        Self { vocab_size, max_lines: usize::MAX, max_line_bytes: usize::MAX, max_context_tokens: usize::MAX }
    }
}

/// A fault with its place: `file:line`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub fault: LineFault,
}

/// Most line errors kept in full; the rest are only counted.
pub const MAX_REPORTED_ERRORS: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} holds no records")]
    NoRecords { path: PathBuf },
    #[error("{path} has more than {limit} lines")]
    TooManyLines { path: PathBuf, limit: usize },
    #[error("{}", BadLines(.path, .errors, *.total))]
    BadLines { path: PathBuf, errors: Vec<LineError>, total: usize },
}

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

fn token_ids(value: Option<&serde_json::Value>, field: &'static str, vocab: usize) -> Result<Vec<u32>, LineFault> {
    let value = value.ok_or(LineFault::MissingField(field))?;
    let items = value.as_array().ok_or(LineFault::NotAnArray(field))?;
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let id = item.as_u64().ok_or_else(|| LineFault::NotATokenId { field, index, value: item.to_string() })?;
            if id >= vocab as u64 {
                return Err(LineFault::OutOfVocab { field, index, id, vocab });
            }
            Ok(id as u32)
        })
        .collect()
}

/// Checks one line's bytes. `completion` is optional (decoding does not read it) but must be
/// well-formed when present.
pub fn parse_line(bytes: &[u8], vocab: usize) -> Result<Vec<u32>, LineFault> {
    let text = std::str::from_utf8(bytes).map_err(|_| LineFault::InvalidUtf8)?;
    if text.trim().is_empty() {
        return Err(LineFault::Empty);
    }
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| LineFault::NotJson(e.to_string()))?;
    let object = value.as_object().ok_or(LineFault::NotAnObject)?;
    let context = token_ids(object.get("context"), "context", vocab)?;
    if context.is_empty() {
        return Err(LineFault::EmptyContext);
    }
    if let Some(completion) = object.get("completion") {
        token_ids(Some(completion), "completion", vocab)?;
    }
    Ok(context)
}

/// Checks every line of `bytes` (a whole JSONL file named `path`).
pub fn parse_records(path: &Path, bytes: &[u8], limits: RecordLimits) -> Result<Vec<Record>, DataError> {
    let mut records = Vec::new();
    let mut errors = Vec::new();
    let mut total = 0;
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if body.is_empty() {
        return Err(DataError::NoRecords { path: path.to_path_buf() });
    }
    if body.split(|&b| b == b'\n').nth(limits.max_lines).is_some() {
        return Err(DataError::TooManyLines { path: path.to_path_buf(), limit: limits.max_lines });
    }
    for (id, line) in body.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let checked = if line.len() > limits.max_line_bytes {
            Err(LineFault::LineTooLong { bytes: line.len(), limit: limits.max_line_bytes })
        } else {
            parse_line(line, limits.vocab_size).and_then(|context| match context.len() {
                tokens if tokens > limits.max_context_tokens => {
                    Err(LineFault::ContextTooLong { tokens, limit: limits.max_context_tokens })
                }
                _ => Ok(context),
            })
        };
        match checked {
            Ok(context) => records.push(Record { id, context }),
            Err(fault) => {
                total += 1;
                if errors.len() < MAX_REPORTED_ERRORS {
                    errors.push(LineError { line: id + 1, fault });
                }
            }
        }
    }
    if total > 0 {
        return Err(DataError::BadLines { path: path.to_path_buf(), errors, total });
    }
    Ok(records)
}

/// Reads and checks a JSONL file.
pub fn read_records(path: &Path, vocab: usize) -> Result<Vec<Record>, DataError> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io { path: path.to_path_buf(), source })?;
    parse_records(path, &bytes, RecordLimits::vocab(vocab))
}

#[cfg(test)]
mod tests;
