//! The text form of a test JSONL (`{"context": "...", "completion": "..."}`, gpt2_encode.py's
//! input) read into the same [`Record`]s that gpt2_encode.py's output would give: the context
//! encoded as is, the completion encoded after one leading space, and `<|endoftext|>` (50256)
//! appended to the context with `--add_bos` and to the completion with `--add_eos`.

use std::path::Path;

use super::bpe::{encode, ENDOFTEXT_ID};
use crate::error::{DataError, LineFault};
use crate::records::{parse_lines, read_data_file, Record, RecordLimits};

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
) -> Result<&'a str, LineFault> {
    let value = object.get(field).ok_or(LineFault::MissingField(field))?;
    value.as_str().ok_or_else(|| LineFault::NotAString { field, value: crate::quote::prefix(&value.to_string()) })
}

/// Checks one text-form line into the record with id `id`. Both fields are required, as
/// gpt2_encode.py reads both.
pub fn parse_text_line(id: usize, bytes: &[u8], options: EncodeOptions) -> Result<Record, LineFault> {
    let text = std::str::from_utf8(bytes).map_err(|_| LineFault::InvalidUtf8)?;
    if text.trim().is_empty() {
        return Err(LineFault::Empty);
    }
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| LineFault::NotJson(e.to_string()))?;
    let object = value.as_object().ok_or(LineFault::NotAnObject)?;
    let context = text_field(object, "context")?;
    let completion = text_field(object, "completion")?;
    let (context, completion) = encode_pair(context, completion, options);
    if context.is_empty() {
        return Err(LineFault::EmptyContext);
    }
    Ok(Record { id, context, completion })
}

/// Checks and encodes every line of `bytes` (a whole text-form file named `path`), with the
/// same limits and `file:line` errors as the ids form. A record's id is its 0-based line
/// number. `limits.vocab_size` is not consulted: encoding only yields GPT-2 ids.
pub fn parse_text_records(
    path: &Path,
    bytes: &[u8],
    options: EncodeOptions,
    limits: RecordLimits,
) -> Result<Vec<Record>, DataError> {
    parse_lines(path, bytes, limits, |id, line| parse_text_line(id, line, options))
}

/// Reads, checks and encodes a text-form JSONL file.
pub fn read_text_records(path: &Path, options: EncodeOptions) -> Result<Vec<Record>, DataError> {
    parse_text_records(path, &read_data_file(path)?, options, RecordLimits::vocab(super::bpe::VOCAB_SIZE))
}
