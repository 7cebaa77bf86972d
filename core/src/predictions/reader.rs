//! Reads a predictions JSONL back: every line must be `{"id": N, "predict": [ids]}`, and each
//! id may appear once. Faults are named by `file:line` and field.

use std::collections::HashMap;
use std::path::Path;

use crate::error::PredictionsError;

/// One line of a predictions file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PredictionLine {
    /// 1-based line number in the file.
    pub line: usize,
    pub id: usize,
    pub predict: Vec<u32>,
}

/// `predict` without the zeros the reference pads it with up to `eval_len`.
pub fn strip_padding(predict: &[u32]) -> &[u32] {
    let end = predict.iter().rposition(|&t| t != 0).map_or(0, |i| i + 1);
    &predict[..end]
}

fn parse_line(text: &str) -> Result<(usize, Vec<u32>), String> {
    if text.trim().is_empty() {
        return Err("empty line".into());
    }
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let object = value.as_object().ok_or("not a JSON object")?;
    let id = object.get("id").ok_or("field `id` is missing")?;
    let id = id
        .as_u64()
        .and_then(|id| usize::try_from(id).ok())
        .ok_or_else(|| format!("field `id` must be a non-negative integer, not {id}"))?;
    let predict = object.get("predict").ok_or("field `predict` is missing")?;
    let predict = predict.as_array().ok_or("field `predict` must be an array of token ids")?;
    let tokens = predict
        .iter()
        .enumerate()
        .map(|(index, token)| {
            token.as_u64().and_then(|t| u32::try_from(t).ok()).ok_or_else(|| {
                format!("field `predict`: element {index} is not a non-negative integer token id: {token}")
            })
        })
        .collect::<Result<Vec<u32>, String>>()?;
    Ok((id, tokens))
}

/// Checks every line of `bytes` (a whole predictions file named `path`), in file order.
pub fn parse_predictions(path: &Path, bytes: &[u8]) -> Result<Vec<PredictionLine>, PredictionsError> {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let mut lines = Vec::new();
    let mut first_line_of: HashMap<usize, usize> = HashMap::new();
    if body.is_empty() {
        return Ok(lines);
    }
    for (index, raw) in body.split(|&b| b == b'\n').enumerate() {
        let line = index + 1;
        let bad = |detail: String| PredictionsError::BadLine { path: path.to_path_buf(), line, detail };
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let text = std::str::from_utf8(raw).map_err(|_| bad("line is not valid UTF-8".into()))?;
        let (id, predict) = parse_line(text).map_err(bad)?;
        if let Some(&first_line) = first_line_of.get(&id) {
            return Err(PredictionsError::DuplicateId { path: path.to_path_buf(), line, id, first_line });
        }
        first_line_of.insert(id, line);
        lines.push(PredictionLine { line, id, predict });
    }
    Ok(lines)
}

/// Reads and checks a predictions file.
pub fn read_predictions(path: &Path) -> Result<Vec<PredictionLine>, PredictionsError> {
    let bytes = std::fs::read(path).map_err(|source| PredictionsError::Io { path: path.to_path_buf(), source })?;
    parse_predictions(path, &bytes)
}

/// The predictions of a file for data of `records` lines, indexed by id: every id in
/// `0..records` exactly once (the reader has already refused repeats).
pub fn by_record(path: &Path, lines: Vec<PredictionLine>, records: usize) -> Result<Vec<Vec<u32>>, PredictionsError> {
    let mut out: Vec<Option<Vec<u32>>> = vec![None; records];
    for PredictionLine { line, id, predict } in lines {
        let slot =
            out.get_mut(id).ok_or(PredictionsError::UnknownId { path: path.to_path_buf(), line, id, records })?;
        *slot = Some(predict);
    }
    let missing = out.iter().filter(|p| p.is_none()).count();
    if let Some(id) = out.iter().position(Option::is_none) {
        return Err(PredictionsError::MissingId { path: path.to_path_buf(), id, missing });
    }
    Ok(out.into_iter().flatten().collect())
}

/// Refuses a file whose ids are not strictly ascending, as lorabeam's ordered output promises.
pub fn check_ascending(path: &Path, lines: &[PredictionLine]) -> Result<(), PredictionsError> {
    for pair in lines.windows(2) {
        if pair[1].id <= pair[0].id {
            let (line, id, previous) = (pair[1].line, pair[1].id, pair[0].id);
            return Err(PredictionsError::OutOfOrder { path: path.to_path_buf(), line, id, previous });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
