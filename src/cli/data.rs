//! The two forms of test JSONL the CLI takes: token ids (`{"context": [ids], ...}`, what
//! gpt2_encode.py writes) or text (`{"context": "name : ...", ...}`, what it reads). Text is
//! encoded here exactly as `gpt2_encode.py --add_bos --add_eos` would, so everything after this
//! point sees ids.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use lorabeam_core::records::{parse_records, read_data_file};
use lorabeam_core::text::{
    detect_form, encode_text_jsonl, parse_categories, parse_text_records, EncodeOptions, JsonlForm, VOCAB_SIZE,
};
use lorabeam_core::{Record, RecordLimits};
use lorabeam_storage::Location;
use lorabeam_worker::model_files::location;

use super::objects::read_data;

/// What the summary says when the input was text.
pub const ENCODED_FROM_TEXT: &str = "text input, encoded as gpt2_encode.py --add_bos --add_eos";

/// A job's checked records, and whether they were encoded from text.
pub struct JobData {
    pub records: Vec<Record>,
    pub encoded_from_text: bool,
    /// Each line's WebNLG category (`cate`), `None` where it has none: read with the records,
    /// since a pipe is read only once.
    pub categories: Vec<Option<bool>>,
}

/// Reads `path` in whichever form it is, every fault named by `file:line` and field. The file
/// is read once, so a pipe (`--data /dev/stdin`, `<(...)`) serves as well as a file; an
/// object's URL (s3://, gs://, az://) is read whole from its store, and names its lines.
pub fn read_job_data(path: &Path, vocab_size: usize) -> anyhow::Result<JobData> {
    parse_job_data(path, &read_data(path)?, vocab_size)
}

/// [`read_job_data`] of bytes already read from `path` (which names them in errors).
pub fn parse_job_data(path: &Path, bytes: &[u8], vocab_size: usize) -> anyhow::Result<JobData> {
    if detect_form(bytes) == Some(JsonlForm::Text) {
        let records = parse_text_records(path, bytes, EncodeOptions::E2E, RecordLimits::vocab(VOCAB_SIZE))?;
        if let Some((record, index, token)) = first_token_past(&records, vocab_size) {
            anyhow::bail!(
                "{}:{}: the text encodes to token {token} at index {index}, outside the model's vocabulary (0..{vocab_size})",
                path.display(),
                record + 1
            );
        }
        let categories = parse_categories(path, bytes)?;
        return Ok(JobData { records, encoded_from_text: true, categories });
    }
    // Anything else (ids, or a first line too broken to tell) gets the ids reader's errors.
    let records = parse_records(path, bytes, RecordLimits::vocab(vocab_size))?;
    Ok(JobData { records, encoded_from_text: false, categories: parse_categories(path, bytes)? })
}

/// What `submit` and `sweep` send: the data file's bytes as they are when they hold ids; its
/// records encoded to ids when it is text (checked here, with `file:line` errors, before
/// anything is sent).
pub struct JobBytes {
    /// Where they came from, for messages.
    pub path: PathBuf,
    pub jsonl: Arc<[u8]>,
    pub encoded_from_text: bool,
    /// Data in object storage: the URL the coordinator reads itself (`jsonl` is then empty).
    pub data_url: Option<String>,
}

impl JobBytes {
    /// Reads `path` once: a pipe may be read only once, and a sweep sends the same data in
    /// every job.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        // An object is the coordinator's to read: only its scheme is checked here.
        let local = match location(path).with_context(|| format!("--data {}", path.display()))? {
            Location::Remote(remote) => {
                let data_url = Some(remote.url().to_string());
                return Ok(Self { path: path.to_path_buf(), jsonl: Arc::from([]), encoded_from_text: false, data_url });
            }
            Location::Local(local) => local,
        };
        let bytes = read_data_file(&local)?;
        let path = path.to_path_buf();
        if let Some(jsonl) = encode_text_jsonl(&path, &bytes, RecordLimits::vocab(VOCAB_SIZE))? {
            return Ok(Self { path, jsonl: jsonl.into(), encoded_from_text: true, data_url: None });
        }
        Ok(Self { path, jsonl: bytes.into(), encoded_from_text: false, data_url: None })
    }
}

/// GPT-2 BPE yields ids below 50257; a model with a smaller vocabulary cannot take them.
fn first_token_past(records: &[Record], vocab_size: usize) -> Option<(usize, usize, u32)> {
    records.iter().find_map(|r| {
        let (index, token) =
            r.context.iter().chain(&r.completion).enumerate().find(|(_, &t)| t as usize >= vocab_size)?;
        Some((r.id, index, *token))
    })
}
