//! Writes predictions as the reference does (`json.dumps({"id": N, "predict": [...]})` per
//! line), to a temporary file renamed into place only when complete.

use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("cannot write predictions to {path}: {source}")]
pub struct WriteError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// Appends one prediction line in Python's `json.dumps` layout.
pub fn format_prediction(out: &mut String, id: usize, predict: &[u32]) {
    use std::fmt::Write as _;
    let _ = write!(out, "{{\"id\": {id}, \"predict\": [");
    for (i, token) in predict.iter().enumerate() {
        let _ = if i == 0 { write!(out, "{token}") } else { write!(out, ", {token}") };
    }
    out.push_str("]}\n");
}

/// An ordered predictions file being written: lines go to a temporary file next to `path`,
/// which takes its name only in [`finish`](Self::finish), so readers never see a partial file.
pub struct PredictionFile {
    path: PathBuf,
    tmp: tempfile::NamedTempFile,
    buffer: String,
}

impl PredictionFile {
    pub fn create(path: &Path) -> Result<Self, WriteError> {
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let tmp = tempfile::NamedTempFile::new_in(dir).map_err(|source| WriteError { path: path.into(), source })?;
        Ok(Self { path: path.to_path_buf(), tmp, buffer: String::new() })
    }

    fn fail(&self, source: std::io::Error) -> WriteError {
        WriteError { path: self.path.clone(), source }
    }

    pub fn push(&mut self, id: usize, predict: &[u32]) -> Result<(), WriteError> {
        format_prediction(&mut self.buffer, id, predict);
        if self.buffer.len() > 1 << 16 {
            self.tmp.write_all(self.buffer.as_bytes()).map_err(|e| self.fail(e))?;
            self.buffer.clear();
        }
        Ok(())
    }

    /// Flushes, syncs and renames the file into place.
    pub fn finish(mut self) -> Result<(), WriteError> {
        self.tmp.write_all(self.buffer.as_bytes()).map_err(|e| self.fail(e))?;
        self.tmp.as_file().sync_all().map_err(|e| self.fail(e))?;
        let path = self.path.clone();
        self.tmp.persist(&path).map_err(|e| WriteError { path, source: e.error })?;
        Ok(())
    }
}

/// Writes `(id, predict)` lines in the order given, atomically: readers never see a partial
/// file under `path`.
pub fn write_predictions<'a>(
    path: &Path,
    predictions: impl IntoIterator<Item = (usize, &'a [u32])>,
) -> Result<(), WriteError> {
    let mut file = PredictionFile::create(path)?;
    for (id, predict) in predictions {
        file.push(id, predict)?;
    }
    file.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_match_python_json_dumps() {
        let mut out = String::new();
        format_prediction(&mut out, 3, &[1318, 318, 0]);
        format_prediction(&mut out, 4, &[]);
        assert_eq!(out, "{\"id\": 3, \"predict\": [1318, 318, 0]}\n{\"id\": 4, \"predict\": []}\n");
    }

    #[test]
    fn file_appears_only_complete() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.jsonl");
        let rows: Vec<(usize, Vec<u32>)> = (0..5000).map(|i| (i, vec![i as u32; 8])).collect();
        write_predictions(&path, rows.iter().map(|(i, p)| (*i, p.as_slice()))).expect("write");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text.lines().count(), 5000);
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1, "no temporary file left");
    }
}
