//! Credentials as files: `LORABEAM_OBJECT_STORE_CREDENTIALS_DIR` names a folder (a mounted
//! Kubernetes Secret, say) whose files are named as the providers' environment variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AZURE_STORAGE_ACCOUNT_KEY`, …) and hold their
//! values. They are read as those variables would be, after the environment (a file wins), so a
//! secret never has to be an environment variable. Files named otherwise are ignored.

use std::path::{Path, PathBuf};

use crate::{Result, StorageError};

/// The variable naming the folder.
pub const CREDENTIALS_DIR_VAR: &str = "LORABEAM_OBJECT_STORE_CREDENTIALS_DIR";
/// More files than a Secret of credentials holds, or larger ones, are refused.
const MAX_FILES: usize = 64;
const MAX_FILE_BYTES: u64 = 64 << 10;

/// The folder's `(lowercase name, value)` pairs whose names start with `prefix` (`aws_`,
/// `google_`, `azure_`), values trimmed of surrounding whitespace; nothing when the variable
/// is not set. Errors name the file, never its contents.
pub fn credential_files(prefix: &str) -> Result<Vec<(String, String)>> {
    let Some(dir) = std::env::var_os(CREDENTIALS_DIR_VAR).map(PathBuf::from) else { return Ok(Vec::new()) };
    let entries = std::fs::read_dir(&dir).map_err(|e| StorageError::local(&dir, e))?;
    let mut found = Vec::new();
    for (count, entry) in entries.enumerate() {
        let entry = entry.map_err(|e| StorageError::local(&dir, e))?;
        if count >= MAX_FILES {
            return Err(too_many(&dir));
        }
        let name = entry.file_name().to_string_lossy().to_ascii_lowercase();
        // Kubernetes mounts a Secret's keys beside `..data` links and dot folders.
        if name.starts_with('.') || !name.starts_with(prefix) {
            continue;
        }
        found.push((name, read_value(&entry.path())?));
    }
    found.sort();
    Ok(found)
}

fn read_value(path: &Path) -> Result<String> {
    let size = std::fs::metadata(path).map_err(|e| StorageError::local(path, e))?.len();
    if size > MAX_FILE_BYTES {
        let error = std::io::Error::other(format!("{size} bytes, more than a credential's {MAX_FILE_BYTES}"));
        return Err(StorageError::local(path, error));
    }
    let text = std::fs::read_to_string(path).map_err(|e| StorageError::local(path, e))?;
    Ok(text.trim().to_string())
}

fn too_many(dir: &Path) -> StorageError {
    let error = std::io::Error::other(format!("more than {MAX_FILES} files: not a folder of credentials"));
    StorageError::local(dir, error)
}
