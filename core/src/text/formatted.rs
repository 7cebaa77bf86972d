//! The text form of a test JSONL (`{"context": "...", "completion": "..."}`, gpt2_encode.py's
//! input) read into the same [`Record`]s that gpt2_encode.py's output would give: the context
//! encoded as is, the completion encoded after one leading space, and `<|endoftext|>` (50256)
//! appended to the context with `--add_bos` and to the completion with `--add_eos`.

use std::path::Path;

use super::bpe::{encode, ENDOFTEXT_ID};
use super::error::{TextDataError, TextLineError, TextLineFault};
use crate::error::MAX_REPORTED_ERRORS;
use crate::records::{Record, RecordLimits};

/// gpt2_encode.py's two independent flags. The default is the script's (neither); the E2E data
/// of microsoft/LoRA's README, and this repository's, was made with [`EncodeOptions::E2E`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EncodeOptions {
    /// `--add_bos`: 50256 after the context (it separates the context from the completion).
    pub add_bos: bool,
    /// `--add_eos`: 50256 after the completion.
    pub add_eos: bool,
}

impl EncodeOptions {
    /// `--add_bos --add_eos`, as the README's E2E data is made.
    pub const E2E: Self = Self { add_bos: true, add_eos: true };
}

/// One line's token ids, as gpt2_encode.py writes them: `(context, completion)`.
pub fn encode_pair(context: &str, completion: &str, options: EncodeOptions) -> (Vec<u32>, Vec<u32>) {
    let mut context_ids = encode(context);
    if options.add_bos {
        context_ids.push(ENDOFTEXT_ID);
    }
    // The script encodes `' ' + completion`, so the completion's first word gets GPT-2's
    // space-prefixed token, as it would after the context in running text.
    let mut completion_ids = encode(&format!(" {completion}"));
    if options.add_eos {
        completion_ids.push(ENDOFTEXT_ID);
    }
    (context_ids, completion_ids)
}

fn text_field<'a>(
    object: &'a serde_json::Map<String, serde_json::Value>,
    field: &'static str,
) -> Result<&'a str, TextLineFault> {
    let value = object.get(field).ok_or(TextLineFault::MissingField(field))?;
    value.as_str().ok_or_else(|| TextLineFault::NotAString { field, value: value.to_string() })
}

/// Checks one text-form line into the record with id `id`. Both fields are required, as
/// gpt2_encode.py reads both.
pub fn parse_text_line(id: usize, bytes: &[u8], options: EncodeOptions) -> Result<Record, TextLineFault> {
    let text = std::str::from_utf8(bytes).map_err(|_| TextLineFault::InvalidUtf8)?;
    if text.trim().is_empty() {
        return Err(TextLineFault::Empty);
    }
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| TextLineFault::NotJson(e.to_string()))?;
    let object = value.as_object().ok_or(TextLineFault::NotAnObject)?;
    let context = text_field(object, "context")?;
    let completion = text_field(object, "completion")?;
    let (context, completion) = encode_pair(context, completion, options);
    if context.is_empty() {
        return Err(TextLineFault::EmptyContext);
    }
    Ok(Record { id, context, completion })
}

fn check_text_line(
    id: usize,
    line: &[u8],
    options: EncodeOptions,
    limits: &RecordLimits,
) -> Result<Record, TextLineFault> {
    if line.len() > limits.max_line_bytes {
        return Err(TextLineFault::LineTooLong { bytes: line.len(), limit: limits.max_line_bytes });
    }
    let record = parse_text_line(id, line, options)?;
    if record.context.len() > limits.max_context_tokens {
        return Err(TextLineFault::ContextTooLong { tokens: record.context.len(), limit: limits.max_context_tokens });
    }
    Ok(record)
}

/// Checks and encodes every line of `bytes` (a whole text-form file named `path`). A record's
/// id is its 0-based line number, as for the ids form. `limits.vocab_size` is not consulted:
/// encoding only yields GPT-2 ids.
pub fn parse_text_records(
    path: &Path,
    bytes: &[u8],
    options: EncodeOptions,
    limits: RecordLimits,
) -> Result<Vec<Record>, TextDataError> {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if body.is_empty() {
        return Err(TextDataError::NoRecords { path: path.to_path_buf() });
    }
    if body.split(|&b| b == b'\n').nth(limits.max_lines).is_some() {
        return Err(TextDataError::TooManyLines { path: path.to_path_buf(), limit: limits.max_lines });
    }
    let mut records = Vec::new();
    let mut errors = Vec::new();
    let mut total = 0;
    for (id, line) in body.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match check_text_line(id, line, options, &limits) {
            Ok(record) => records.push(record),
            Err(fault) => {
                total += 1;
                if errors.len() < MAX_REPORTED_ERRORS {
                    errors.push(TextLineError { line: id + 1, fault });
                }
            }
        }
    }
    if total > 0 {
        return Err(TextDataError::BadLines { path: path.to_path_buf(), errors, total });
    }
    Ok(records)
}

/// Reads, checks and encodes a text-form JSONL file.
pub fn read_text_records(path: &Path, options: EncodeOptions) -> Result<Vec<Record>, TextDataError> {
    if path.is_dir() {
        return Err(TextDataError::IsADirectory { path: path.to_path_buf() });
    }
    let bytes = std::fs::read(path).map_err(|source| TextDataError::Io { path: path.to_path_buf(), source })?;
    parse_text_records(path, &bytes, options, RecordLimits::vocab(super::bpe::VOCAB_SIZE))
}
