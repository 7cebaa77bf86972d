//! A bounded local copy of objects, keyed by their URLs and ETags: a changed object has another
//! key, so it is fetched again; the least recently used entries go when the cache is over its
//! bound.
//!
//! An entry is a folder holding one or more files (an adapter's folder, a checkpoint). It is
//! made under a temporary name and renamed into place whole, so a reader (this process or
//! another sharing the folder) sees it complete or not at all.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::{Meta, Remote, Result, StorageError};

/// A cached folder of objects.
#[derive(Debug, Clone)]
pub struct CacheEntry {
    /// The folder that holds the files under their relative names.
    pub dir: PathBuf,
    /// Whether this call fetched it (false: it was already there).
    pub fetched: bool,
}

#[derive(Debug, Clone)]
pub struct ObjectCache {
    dir: PathBuf,
    max_bytes: u64,
}

impl ObjectCache {
    pub fn new(dir: PathBuf, max_bytes: u64) -> Self {
        ObjectCache { dir, max_bytes }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The folder holding `objects` (relative name, object, the version listed) as of their
    /// ETags, fetched if it is not there. Each download insists on the listed ETag: an object
    /// replaced between the listing and the download is [`StorageError::Changed`], never a mix
    /// of versions. `max_object` bounds each object.
    pub async fn fetch(
        &self,
        key_url: &str,
        objects: &[(String, Remote, Meta)],
        max_object: u64,
    ) -> Result<CacheEntry> {
        let mut key = Fnv::default();
        key.add(key_url.as_bytes());
        key.add(version_tag(objects).as_bytes());
        let dir = self.dir.join(format!("{:016x}", key.0));
        if dir.is_dir() {
            touch(&dir);
            return Ok(CacheEntry { dir, fetched: false });
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| StorageError::local(&self.dir, e))?;
        let partial = tempfile::Builder::new()
            .prefix(".partial-")
            .tempdir_in(&self.dir)
            .map_err(|e| StorageError::local(&self.dir, e))?;
        for (name, remote, meta) in objects {
            let dest = partial.path().join(name);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).map_err(|e| StorageError::local(parent, e))?;
            }
            let if_match = (!meta.etag.is_empty()).then_some(meta.etag.as_str());
            let got = remote.download(&dest, max_object, if_match).await?;
            if !meta.etag.is_empty() && got.etag != meta.etag {
                return Err(StorageError::Changed {
                    url: remote.url().to_string(),
                    expected: meta.etag.clone(),
                    found: got.etag,
                });
            }
        }
        let made = partial.keep();
        if let Err(e) = std::fs::rename(&made, &dir) {
            // Another process made the same entry first: use it.
            let _ = std::fs::remove_dir_all(&made);
            if !dir.is_dir() {
                return Err(StorageError::local(&dir, e));
            }
        }
        self.evict(&dir);
        Ok(CacheEntry { dir, fetched: true })
    }

    /// Removes the least recently used entries until the cache is within its bound, never
    /// `keep` (the entry just asked for, even when it alone is over the bound).
    fn evict(&self, keep: &Path) {
        let Ok(read) = std::fs::read_dir(&self.dir) else { return };
        let mut entries: Vec<(SystemTime, u64, PathBuf)> = read
            .flatten()
            .filter(|entry| !entry.file_name().to_string_lossy().starts_with('.'))
            .map(|entry| {
                let path = entry.path();
                let used = entry.metadata().and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
                (used, folder_bytes(&path), path)
            })
            .collect();
        let mut total: u64 = entries.iter().map(|(_, bytes, _)| bytes).sum();
        entries.sort();
        for (_, bytes, path) in entries {
            if total <= self.max_bytes {
                break;
            }
            if path != keep && std::fs::remove_dir_all(&path).is_ok() {
                tracing::info!(entry = %path.display(), bytes, "object cache: evicted");
                total = total.saturating_sub(bytes);
            }
        }
    }
}

/// One version of a set of objects: a tag over each one's name, ETag and size. The cache's
/// entries are keyed by it, and a job pins the version of its adapter by it.
pub fn version_tag(objects: &[(String, Remote, Meta)]) -> String {
    let mut tag = Fnv::default();
    for (name, _, meta) in objects {
        tag.add(name.as_bytes());
        tag.add(meta.etag.as_bytes());
        tag.add(&meta.size.to_le_bytes());
    }
    format!("{:016x}", tag.0)
}

/// Marks an entry used now (its folder's mtime orders eviction).
fn touch(dir: &Path) {
    if let Ok(file) = std::fs::File::open(dir) {
        let _ = file.set_modified(SystemTime::now());
    }
}

fn folder_bytes(path: &Path) -> u64 {
    let Ok(read) = std::fs::read_dir(path) else {
        return std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    };
    read.flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => folder_bytes(&entry.path()),
            _ => entry.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

/// FNV-1a 64 over the key's parts, each ended by a 0xff byte (which UTF-8 never holds), so
/// ("ab","c") and ("a","bc") differ.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn add(&mut self, bytes: &[u8]) {
        for &byte in bytes.iter().chain(&[0xff]) {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}
