//! Writes predictions as the reference does (`json.dumps({"id": N, "predict": [...]})` per
//! line), to a temporary file renamed into place only when complete and synced.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::WriteError;

/// Appends one prediction line in Python's `json.dumps` layout.
pub fn format_prediction(out: &mut String, id: usize, predict: &[u32]) {
    use std::fmt::Write as _;
    let _ = write!(out, "{{\"id\": {id}, \"predict\": [");
    for (i, token) in predict.iter().enumerate() {
        let _ = if i == 0 { write!(out, "{token}") } else { write!(out, ", {token}") };
    }
    out.push_str("]}\n");
}

/// A file being written under a temporary name next to `path`; it takes its name only in
/// [`finish`](Self::finish), after its bytes are on disk.
struct AtomicFile {
    path: PathBuf,
    tmp: tempfile::NamedTempFile,
}

impl AtomicFile {
    fn create(path: &Path) -> Result<Self, WriteError> {
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        // Mode 0666 as `open(2)` takes it, so the umask decides, as for any file a user writes
        // (tempfile's default of 0600 would keep outputs from the user's group).
        let mut builder = tempfile::Builder::new();
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
        let tmp = builder.tempfile_in(dir).map_err(|source| WriteError { path: path.into(), source })?;
        Ok(Self { path: path.to_path_buf(), tmp })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), WriteError> {
        self.tmp.write_all(bytes).map_err(|source| WriteError { path: self.path.clone(), source })
    }

    /// Syncs the data before the rename: a crash after it leaves the old file or the whole
    /// new one, never an empty or partial file under `path`.
    fn finish(self) -> Result<(), WriteError> {
        let Self { path, tmp } = self;
        if let Err(source) = tmp.as_file().sync_all() {
            return Err(WriteError { path, source });
        }
        tmp.persist(&path).map_err(|e| WriteError { path, source: e.error })?;
        Ok(())
    }
}

/// Writes `bytes` to `path` atomically (temporary file, `sync_all`, rename).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let mut file = AtomicFile::create(path)?;
    file.write(bytes)?;
    file.finish()
}

/// An ordered predictions file being written: readers never see a partial file under its name.
pub struct PredictionFile {
    file: AtomicFile,
    buffer: String,
}

impl PredictionFile {
    pub fn create(path: &Path) -> Result<Self, WriteError> {
        Ok(Self { file: AtomicFile::create(path)?, buffer: String::new() })
    }

    pub fn push(&mut self, id: usize, predict: &[u32]) -> Result<(), WriteError> {
        format_prediction(&mut self.buffer, id, predict);
        self.flush_if_full()
    }

    /// Appends a line already formatted (it ends with `\n`), e.g. a prediction as text.
    pub fn push_line(&mut self, line: &str) -> Result<(), WriteError> {
        self.buffer.push_str(line);
        self.flush_if_full()
    }

    fn flush_if_full(&mut self) -> Result<(), WriteError> {
        if self.buffer.len() > 1 << 16 {
            self.file.write(self.buffer.as_bytes())?;
            self.buffer.clear();
        }
        Ok(())
    }

    /// Flushes, syncs and renames the file into place.
    pub fn finish(mut self) -> Result<(), WriteError> {
        self.file.write(self.buffer.as_bytes())?;
        self.file.finish()
    }
}

/// Writes `(id, predict)` lines in the order given, atomically.
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
        let mut file = PredictionFile::create(&path).expect("create");
        for (id, predict) in &rows[..2500] {
            file.push(*id, predict).expect("push");
        }
        assert!(!path.exists(), "nothing under the final name before finish");
        for (id, predict) in &rows[2500..] {
            file.push(*id, predict).expect("push");
        }
        file.finish().expect("finish");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text.lines().count(), 5000);
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1, "no temporary file left");
    }

    #[test]
    fn a_missing_folder_names_the_file() {
        let err = write_atomically(Path::new("/nonexistent-lorabeam-dir/out.jsonl"), b"x").expect_err("no folder");
        assert!(err.to_string().starts_with("cannot write /nonexistent-lorabeam-dir/out.jsonl"), "{err}");
    }
}
