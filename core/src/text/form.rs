//! Which form a test JSONL is in: token ids (gpt2_encode.py's output, read by
//! [`crate::records`]) or text (its input, read by [`super::formatted`]), told from the type
//! of the first non-empty line's `context`.

use std::io::BufRead;
use std::path::Path;

/// The two forms of a test JSONL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonlForm {
    /// `{"context": [ids], ...}`
    Ids,
    /// `{"context": "text", ...}`
    Text,
}

/// The form of one line, or `None` when its `context` is neither an array nor a string (or
/// the line is not a JSON object): the full reader will then name the fault.
pub fn line_form(line: &str) -> Option<JsonlForm> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    match value.as_object()?.get("context")? {
        serde_json::Value::Array(_) => Some(JsonlForm::Ids),
        serde_json::Value::String(_) => Some(JsonlForm::Text),
        _ => None,
    }
}

/// The form of a whole file's bytes, from its first non-empty line only.
pub fn detect_form(bytes: &[u8]) -> Option<JsonlForm> {
    let line = bytes.split(|&b| b == b'\n').find(|line| !line.trim_ascii().is_empty())?;
    line_form(std::str::from_utf8(line).ok()?)
}

/// The form of a file, reading no further than its first non-empty line.
pub fn detect_file_form(path: &Path) -> std::io::Result<Option<JsonlForm>> {
    let reader = std::io::BufReader::new(std::fs::File::open(path)?);
    for line in reader.split(b'\n') {
        let line = line?;
        if !line.trim_ascii().is_empty() {
            return Ok(std::str::from_utf8(&line).ok().and_then(line_form));
        }
    }
    Ok(None)
}
