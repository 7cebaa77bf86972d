//! A flag's value that is either a local path or an object's URL.

use std::path::PathBuf;

use crate::{Remote, Result, StorageError};

/// The schemes lorabeam reads, as `object_store` names them.
const SCHEMES: &[&str] = &["s3", "s3a", "gs", "az", "adl", "azure", "abfs", "abfss"];

/// Where a file (or a folder of them) lives.
#[derive(Debug, Clone)]
pub enum Location {
    Local(PathBuf),
    Remote(Remote),
}

/// Whether `value` is written as a URL (`scheme://…`) rather than a path. A path may hold
/// `://` only after a `/`, so `dir/a://b` stays a path.
pub fn is_url(value: &str) -> bool {
    match value.split_once("://") {
        Some((scheme, _)) => {
            !scheme.is_empty()
                && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
                && scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        }
        None => false,
    }
}

impl Location {
    /// Reads a flag's value: `file://` and plain paths are local; `s3://`, `gs://`, `az://`
    /// (and object_store's other spellings of them) are objects; any other scheme is refused by
    /// name instead of being taken for a relative path that then does not exist.
    pub fn parse(value: &str) -> Result<Location> {
        if !is_url(value) {
            return Ok(Location::Local(PathBuf::from(value)));
        }
        let (scheme, rest) = value.split_once("://").unwrap_or_default();
        let scheme = scheme.to_ascii_lowercase();
        if scheme == "file" {
            let url = url::Url::parse(value)
                .map_err(|e| StorageError::BadUrl { url: value.to_string(), reason: e.to_string() })?;
            return url.to_file_path().map(Location::Local).map_err(|()| StorageError::BadUrl {
                url: value.to_string(),
                reason: format!("not a local path (file://{rest})"),
            });
        }
        if !SCHEMES.contains(&scheme.as_str()) {
            return Err(StorageError::BadUrl {
                url: value.to_string(),
                reason: format!("lorabeam reads local paths and s3://, gs:// or az:// URLs, not {scheme}://"),
            });
        }
        Remote::open(value).map(Location::Remote)
    }

    /// The location as the user wrote it (a URL without credentials, or the path).
    pub fn shown(&self) -> String {
        match self {
            Location::Local(path) => path.display().to_string(),
            Location::Remote(remote) => remote.url().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_urls_and_refused_schemes() {
        assert!(matches!(Location::parse("data/test.jsonl"), Ok(Location::Local(_))));
        assert!(matches!(Location::parse("dir/a://b"), Ok(Location::Local(_))));
        match Location::parse("file:///tmp/x.jsonl") {
            Ok(Location::Local(path)) => assert_eq!(path, PathBuf::from("/tmp/x.jsonl")),
            other => panic!("{other:?}"),
        }
        let refused = Location::parse("ftp://host/x").map(|_| ()).map_err(|e| e.to_string());
        assert_eq!(
            refused,
            Err("ftp://host/x: lorabeam reads local paths and s3://, gs:// or az:// URLs, not ftp://".into())
        );
        match Location::parse("s3://bucket/some/key.jsonl") {
            Ok(Location::Remote(remote)) => assert_eq!(remote.url(), "s3://bucket/some/key.jsonl"),
            other => panic!("{other:?}"),
        }
        assert!(Location::parse("s3:///key").is_err(), "a bucket is needed");
    }
}
