//! Text-form test JSONL turned into the ids form a coordinator queues: what `submit` does on
//! the client for a local file, and the coordinator for data it reads from object storage.

use std::path::Path;

use super::{detect_form, parse_categories, parse_text_records, EncodeOptions, JsonlForm, VOCAB_SIZE};
use crate::error::DataError;
use crate::{Record, RecordLimits};

/// Records as the ids-form JSONL a coordinator takes, each with its text line's WebNLG
/// category (`cate`) where it has one: the coordinator reads it to score the paper's seen and
/// unseen rows.
pub fn ids_jsonl(records: &[Record], categories: &[Option<bool>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, record) in records.iter().enumerate() {
        let mut line = serde_json::json!({ "context": record.context, "completion": record.completion });
        if let Some(cate) = categories.get(i).copied().flatten() {
            line["cate"] = serde_json::Value::Bool(cate);
        }
        out.extend_from_slice(line.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

/// `bytes` (a whole JSONL file named `path`) encoded as gpt2_encode.py --add_bos --add_eos
/// would when its first line is text, every fault named by `file:line`; `None` when it is in
/// the ids form already (or too broken to tell: the ids reader then names the fault).
pub fn encode_text_jsonl(path: &Path, bytes: &[u8], limits: RecordLimits) -> Result<Option<Vec<u8>>, DataError> {
    if detect_form(bytes) != Some(JsonlForm::Text) {
        return Ok(None);
    }
    let limits = RecordLimits { vocab_size: VOCAB_SIZE, ..limits };
    let records = parse_text_records(path, bytes, EncodeOptions::E2E, limits)?;
    Ok(Some(ids_jsonl(&records, &parse_categories(path, bytes)?)))
}
