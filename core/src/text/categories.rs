//! gpt2_decode.py's `--filter all|seen|unseen`: which lines' references it keeps, by the `cate`
//! field microsoft/LoRA's `format_converting_webnlg.py` writes on every WebNLG line (true for
//! the categories seen in training). The paper's WebNLG S, U and A columns are the three
//! filters. DART lines carry no `cate`, so only `all` applies to them, as in the script (which
//! raises `KeyError: 'cate'` otherwise).

use std::path::Path;

use serde_json::Value;

use super::error::E2eTextError;
use crate::error::{DataError, LineError, LineFault, MAX_REPORTED_ERRORS};

/// gpt2_decode.py's `--filter` (default `all`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CategoryFilter {
    /// Every line.
    #[default]
    All,
    /// Lines whose `cate` is true: the categories seen in training (the paper's S).
    Seen,
    /// Lines whose `cate` is false (the paper's U).
    Unseen,
}

impl CategoryFilter {
    /// The three, in the paper's column order: S, U, A.
    pub const PAPER_ORDER: [Self; 3] = [Self::Seen, Self::Unseen, Self::All];

    pub fn name(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Seen => "seen",
            Self::Unseen => "unseen",
        }
    }

    /// The paper's column letter: S, U or A.
    pub fn letter(self) -> &'static str {
        match self {
            Self::All => "A",
            Self::Seen => "S",
            Self::Unseen => "U",
        }
    }

    /// Whether a line with category `seen` is kept. `All` keeps every line without reading
    /// its category; the others need it.
    pub fn keeps(self, seen: Option<bool>) -> Option<bool> {
        match self {
            Self::All => Some(true),
            Self::Seen => seen,
            Self::Unseen => seen.map(|s| !s),
        }
    }
}

impl std::str::FromStr for CategoryFilter {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "all" => Ok(Self::All),
            "seen" => Ok(Self::Seen),
            "unseen" => Ok(Self::Unseen),
            other => Err(format!("unknown filter `{other}` (all, seen or unseen)")),
        }
    }
}

impl std::fmt::Display for CategoryFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Python's truth value of a JSON value, which is how the script reads `items['cate']`:
/// `false`, `null`, `0`, `""`, `[]` and `{}` are false, anything else true.
pub fn py_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Every line's category (`None` where it has no `cate` field), from a JSONL file's bytes in
/// either form, split into lines as the records readers split them. A line that is not a
/// JSON object is an error naming it (the records reader names it first in practice).
pub fn parse_categories(path: &Path, bytes: &[u8]) -> Result<Vec<Option<bool>>, DataError> {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let mut categories = Vec::new();
    let mut errors = Vec::new();
    let mut total = 0;
    for (index, line) in body.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match line_category(line) {
            Ok(category) => categories.push(category),
            Err(fault) => {
                total += 1;
                if errors.len() < MAX_REPORTED_ERRORS {
                    errors.push(LineError { line: index + 1, fault });
                }
            }
        }
    }
    if total > 0 {
        return Err(DataError::BadLines { path: path.to_path_buf(), errors, total });
    }
    Ok(categories)
}

fn line_category(line: &[u8]) -> Result<Option<bool>, LineFault> {
    let value: Value = serde_json::from_slice(line).map_err(|e| LineFault::NotJson(e.to_string()))?;
    let object = value.as_object().ok_or(LineFault::NotAnObject)?;
    Ok(object.get("cate").map(py_truthy))
}

/// Reads a JSONL file's categories (see [`parse_categories`]).
pub fn read_categories(path: &Path) -> Result<Vec<Option<bool>>, DataError> {
    parse_categories(path, &crate::records::read_data_file(path)?)
}

/// Which records `filter` keeps, by record id, from every record's category (`None` for
/// `all`, which keeps every record without reading one). A record without a category is an
/// error when the filter needs it, as the script's `KeyError: 'cate'`.
pub fn keep_mask(
    filter: CategoryFilter,
    categories: &[Option<bool>],
    records: usize,
) -> Result<Option<Vec<bool>>, E2eTextError> {
    if filter == CategoryFilter::All {
        return Ok(None);
    }
    (0..records)
        .map(|id| filter.keeps(categories.get(id).copied().flatten()).ok_or(E2eTextError::NoCategory { id, filter }))
        .collect::<Result<Vec<bool>, _>>()
        .map(Some)
}
