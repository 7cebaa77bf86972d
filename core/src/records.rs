//! A test JSONL (`{"context": [ids], "completion": [ids]}` per line, as gpt2_encode.py writes
//! it) checked into records. Every bad line is reported with its file, line number and field;
//! nothing is half-accepted.

use std::path::Path;

use crate::error::{DataError, LineError, LineFault, MAX_REPORTED_ERRORS};

/// One checked input line. Its id is its 0-based line number, as the reference numbers them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: usize,
    pub context: Vec<u32>,
    /// The reference text's tokens (empty when the line has none): decoding never reads it,
    /// scoring groups it by context.
    pub completion: Vec<u32>,
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

fn token_ids(value: Option<&serde_json::Value>, field: &'static str, vocab: usize) -> Result<Vec<u32>, LineFault> {
    let value = value.ok_or(LineFault::MissingField(field))?;
    let items = value.as_array().ok_or(LineFault::NotAnArray(field))?;
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let id = item.as_u64().ok_or_else(|| LineFault::NotATokenId {
                field,
                index,
                value: crate::quote::prefix(&item.to_string()),
            })?;
            match u32::try_from(id) {
                Ok(token) if (token as usize) < vocab => Ok(token),
                _ => Err(LineFault::OutOfVocab { field, index, id, vocab }),
            }
        })
        .collect()
}

/// Checks one line's bytes into the record with id `id`. `completion` is optional (decoding
/// does not read it) but must be well-formed when present.
pub fn parse_line(id: usize, bytes: &[u8], vocab: usize) -> Result<Record, LineFault> {
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
    let completion = match object.get("completion") {
        Some(completion) => token_ids(Some(completion), "completion", vocab)?,
        None => Vec::new(),
    };
    Ok(Record { id, context, completion })
}

/// Checks one line against the size limits, then its content with `parse`.
fn check_line(
    id: usize,
    line: &[u8],
    limits: &RecordLimits,
    parse: &impl Fn(usize, &[u8]) -> Result<Record, LineFault>,
) -> Result<Record, LineFault> {
    if line.len() > limits.max_line_bytes {
        return Err(LineFault::LineTooLong { bytes: line.len(), limit: limits.max_line_bytes });
    }
    let record = parse(id, line)?;
    if record.context.len() > limits.max_context_tokens {
        return Err(LineFault::ContextTooLong { tokens: record.context.len(), limit: limits.max_context_tokens });
    }
    Ok(record)
}

/// Checks every line of `bytes` (a whole JSONL file named `path`).
pub fn parse_records(path: &Path, bytes: &[u8], limits: RecordLimits) -> Result<Vec<Record>, DataError> {
    parse_lines(path, bytes, limits, |id, line| parse_line(id, line, limits.vocab_size))
}

/// Checks every line of a JSONL file's bytes with `parse` (one form's line reader), under the
/// limits: every bad line is named, and the file is taken whole or not at all.
pub fn parse_lines(
    path: &Path,
    bytes: &[u8],
    limits: RecordLimits,
    parse: impl Fn(usize, &[u8]) -> Result<Record, LineFault>,
) -> Result<Vec<Record>, DataError> {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if body.is_empty() {
        return Err(DataError::NoRecords { path: path.to_path_buf() });
    }
    if body.split(|&b| b == b'\n').nth(limits.max_lines).is_some() {
        return Err(DataError::TooManyLines { path: path.to_path_buf(), limit: limits.max_lines });
    }
    let mut records = Vec::new();
    let mut errors = Vec::new();
    let mut total = 0;
    for (id, line) in body.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match check_line(id, line, &limits, &parse) {
            Ok(record) => records.push(record),
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
    parse_records(path, &read_data_file(path)?, RecordLimits::vocab(vocab))
}

/// A data file's bytes; a directory is named as one.
pub fn read_data_file(path: &Path) -> Result<Vec<u8>, DataError> {
    if path.is_dir() {
        return Err(DataError::IsADirectory { path: path.to_path_buf() });
    }
    std::fs::read(path).map_err(|source| DataError::Io { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests;
