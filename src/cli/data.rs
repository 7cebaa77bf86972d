//! The two forms of test JSONL the CLI takes: token ids (`{"context": [ids], ...}`, what
//! gpt2_encode.py writes) or text (`{"context": "name : ...", ...}`, what it reads). Text is
//! encoded here exactly as `gpt2_encode.py --add_bos --add_eos` would, so everything after this
//! point sees ids.

use std::path::Path;

use anyhow::Context;
use lorabeam_core::text::{detect_file_form, read_text_records, EncodeOptions, JsonlForm};
use lorabeam_core::{read_records, Record};

/// What the summary says when the input was text.
pub const ENCODED_FROM_TEXT: &str = "text input, encoded as gpt2_encode.py --add_bos --add_eos";

/// A job's checked records, and whether they were encoded from text.
pub struct JobData {
    pub records: Vec<Record>,
    pub encoded_from_text: bool,
}

/// Reads `path` in whichever form it is, every fault named by `file:line` and field.
pub fn read_job_data(path: &Path, vocab_size: usize) -> anyhow::Result<JobData> {
    let form = if path.is_dir() { None } else { detect_file_form(path).ok().flatten() };
    if form == Some(JsonlForm::Text) {
        let records = read_text_records(path, EncodeOptions::E2E)?;
        if let Some((record, index, token)) = first_token_past(&records, vocab_size) {
            anyhow::bail!(
                "{}:{}: the text encodes to token {token} at index {index}, outside the model's vocabulary (0..{vocab_size})",
                path.display(),
                record + 1
            );
        }
        return Ok(JobData { records, encoded_from_text: true });
    }
    // Anything else (ids, or a first line too broken to tell) gets the ids reader's errors.
    Ok(JobData { records: read_records(path, vocab_size)?, encoded_from_text: false })
}

/// GPT-2 BPE yields ids below 50257; a model with a smaller vocabulary cannot take them.
fn first_token_past(records: &[Record], vocab_size: usize) -> Option<(usize, usize, u32)> {
    records.iter().find_map(|r| {
        let (index, token) =
            r.context.iter().chain(&r.completion).enumerate().find(|(_, &t)| t as usize >= vocab_size)?;
        Some((r.id, index, *token))
    })
}

/// Records as the ids-form JSONL a coordinator takes.
pub fn ids_jsonl(records: &[Record]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    for record in records {
        let line = serde_json::json!({ "context": record.context, "completion": record.completion });
        serde_json::to_writer(&mut out, &line).context("encoding a record")?;
        out.push(b'\n');
    }
    Ok(out)
}
