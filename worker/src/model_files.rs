//! Model files named by URL (`s3://`, `gs://`, `az://`): each object is downloaded once into the
//! object cache (keyed by its URL and ETag, so a changed object is fetched again and an
//! unchanged one is reused across runs), and the readers load the local copy as they load any
//! path. `lorabeam run` and `lorabeam-worker` both resolve their flags here.

use std::path::{Path, PathBuf};

use anyhow::Context;
use lorabeam_storage::{is_url, Location, Meta, ObjectCache, Remote, StorageError};

use crate::model::adapter::{PEFT_CONFIG_FILE as PEFT_CONFIG, PEFT_WEIGHTS_FILES as PEFT_WEIGHTS};
use crate::ModelSpec;

/// The largest checkpoint (or adapter weights) read from a store.
pub const CHECKPOINT_MAX: u64 = 64 << 30;
/// The largest `config.json` (a model's or a PEFT adapter's) read from a store.
pub const CONFIG_MAX: u64 = 1 << 20;

/// Where the objects go when `--object-cache-dir` is not given: `$XDG_CACHE_HOME/lorabeam/objects`,
/// else `~/.cache/lorabeam/objects`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from).filter(|dir| dir.is_absolute());
    let cache =
        xdg.or_else(|| std::env::var_os("HOME").filter(|h| !h.is_empty()).map(|h| PathBuf::from(h).join(".cache")));
    cache.map(|dir| dir.join("lorabeam").join("objects"))
}

/// Where a flag's value points: a path (or a `file://` URL) is local, `s3://`, `gs://` and
/// `az://` URLs are objects, and other schemes are refused by name.
pub fn location(value: &Path) -> anyhow::Result<Location> {
    match value.to_str().filter(|text| is_url(text)) {
        Some(text) => Ok(Location::parse(text)?),
        None => Ok(Location::Local(value.to_path_buf())),
    }
}

/// Resolves flags that name files to local paths, fetching objects through the cache.
pub struct ObjectFiles {
    dir: Option<PathBuf>,
    max_bytes: u64,
    /// Says that an object was fetched (the CLI prints it; the worker logs it).
    say: fn(&str),
}

impl ObjectFiles {
    /// `dir`: the cache folder (`None`: [`default_cache_dir`]); `max_bytes`: its bound.
    pub fn new(dir: Option<PathBuf>, max_bytes: u64, say: fn(&str)) -> Self {
        ObjectFiles { dir, max_bytes, say }
    }

    fn cache(&self) -> anyhow::Result<ObjectCache> {
        let dir = self.dir.clone().or_else(default_cache_dir).context(
            "no folder for the object cache: neither XDG_CACHE_HOME nor HOME is set; give --object-cache-dir",
        )?;
        Ok(ObjectCache::new(dir, self.max_bytes))
    }

    /// `value` itself when it is a path; the cached copy of the object when it is a URL.
    pub async fn file(&self, value: &Path, max: u64) -> anyhow::Result<PathBuf> {
        match location(value)? {
            Location::Remote(remote) => self.object(&remote, max).await,
            Location::Local(path) => Ok(path),
        }
    }

    /// `file` for an optional flag.
    pub async fn optional(&self, value: Option<&Path>, max: u64) -> anyhow::Result<Option<PathBuf>> {
        match value {
            Some(value) => self.file(value, max).await.map(Some),
            None => Ok(None),
        }
    }

    /// An adapter: a path as it is; a URL ending in `.pt`, or naming one object, that object
    /// (a loralib checkpoint, or any file `Adapter::load` reads); else a PEFT folder, whose
    /// `adapter_config.json` and weights are fetched into one cached folder.
    pub async fn adapter(&self, value: &Path) -> anyhow::Result<PathBuf> {
        let remote = match location(value)? {
            Location::Remote(remote) => remote,
            Location::Local(path) => return Ok(path),
        };
        if remote.url().ends_with(".pt") {
            return self.object(&remote, CHECKPOINT_MAX).await;
        }
        let listed = remote.list().await?;
        let url = remote.url();
        if let Some(objects) = peft_objects(&remote, &listed, "")? {
            return self.fetch(url, &objects).await;
        }
        if !listed.is_empty() {
            anyhow::bail!(
                "{url}: not a PEFT adapter folder: no {PEFT_CONFIG} in it (it holds {})",
                listed.iter().take(8).map(|(name, _)| name.as_str()).collect::<Vec<_>>().join(", ")
            );
        }
        match remote.head().await {
            Ok(_) => self.object(&remote, CHECKPOINT_MAX).await,
            Err(StorageError::NotFound { .. }) => anyhow::bail!(
                "{url}: no such object, and no PEFT adapter folder there ({PEFT_CONFIG} with {} or {})",
                PEFT_WEIGHTS[0],
                PEFT_WEIGHTS[1]
            ),
            Err(other) => Err(other.into()),
        }
    }

    /// One object, as a file named as its URL's last part in its cache folder.
    async fn object(&self, remote: &Remote, max: u64) -> anyhow::Result<PathBuf> {
        let url = remote.url();
        let name = url.rsplit('/').next().filter(|name| !name.is_empty()).map(str::to_string);
        let name = name.with_context(|| format!("{url}: names a folder, not a file"))?;
        let meta = remote.head().await?;
        check_size(remote, &meta, max)?;
        let dir = self.fetch(url, &[(name.clone(), remote.clone(), meta)]).await?;
        Ok(dir.join(name))
    }

    /// The cached folder of `objects`, fetched when it is not there yet.
    async fn fetch(&self, key_url: &str, objects: &[(String, Remote, Meta)]) -> anyhow::Result<PathBuf> {
        let max = objects.iter().map(|(_, _, meta)| meta.size).max().unwrap_or(0);
        let entry = self.cache()?.fetch(key_url, objects, max).await?;
        let bytes: u64 = objects.iter().map(|(_, _, meta)| meta.size).sum();
        if entry.fetched {
            (self.say)(&format!("fetched {key_url} ({bytes} bytes) into {}", entry.dir.display()));
        } else {
            tracing::debug!(url = key_url, bytes, dir = %entry.dir.display(), "object cache: reused");
        }
        Ok(entry.dir)
    }
}

/// What a PEFT adapter folder in a store (listed as `listed`) holds for the loader: its config
/// and the first weights file present (the one the loader reads), each named `under` + its
/// file name in the cache folder. `None` when the folder has no config; an error when it has a
/// config without weights, or a config larger than any peft writes.
pub fn peft_objects(
    folder: &Remote,
    listed: &[(String, Meta)],
    under: &str,
) -> anyhow::Result<Option<Vec<(String, Remote, Meta)>>> {
    let find = |name: &str| listed.iter().find(|(listed, _)| listed == name);
    let Some(config) = find(PEFT_CONFIG) else { return Ok(None) };
    let Some(weights) = PEFT_WEIGHTS.iter().find_map(|name| find(name)) else {
        anyhow::bail!(
            "{}: a PEFT adapter folder with {PEFT_CONFIG} but neither {} nor {} beside it",
            folder.url(),
            PEFT_WEIGHTS[0],
            PEFT_WEIGHTS[1]
        )
    };
    check_size(&folder.child(PEFT_CONFIG), &config.1, CONFIG_MAX)?;
    let object = |(name, meta): &(String, Meta)| (format!("{under}{name}"), folder.child(name), meta.clone());
    Ok(Some(vec![object(config), object(weights)]))
}

fn check_size(remote: &Remote, meta: &Meta, max: u64) -> Result<(), StorageError> {
    if meta.size > max {
        return Err(StorageError::TooLarge { url: remote.url().to_string(), size: meta.size, max });
    }
    Ok(())
}

/// The model a spec names, its files named by URL fetched and replaced by their local copies.
pub async fn resolve_spec(mut spec: ModelSpec, files: &ObjectFiles) -> anyhow::Result<ModelSpec> {
    let checkpoints = &mut spec.checkpoints;
    checkpoints.init = files.optional(checkpoints.init.as_deref(), CHECKPOINT_MAX).await?;
    checkpoints.base = files.optional(checkpoints.base.as_deref(), CHECKPOINT_MAX).await?;
    spec.model_config = files.optional(spec.model_config.as_deref(), CONFIG_MAX).await?;
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_paths_and_other_schemes_are_refused() {
        let local = |value: &str| match location(Path::new(value)) {
            Ok(Location::Local(path)) => Some(path),
            _ => None,
        };
        assert_eq!(local("ckpt/model.bin"), Some(PathBuf::from("ckpt/model.bin")));
        assert_eq!(local("dir/a://b"), Some(PathBuf::from("dir/a://b")));
        assert_eq!(local("file:///tmp/model.bin"), Some(PathBuf::from("/tmp/model.bin")));
        let ftp = location(Path::new("ftp://x/y")).map(|_| ()).map_err(|e| e.to_string());
        assert!(ftp.as_ref().is_err_and(|e| e.contains("not ftp://")), "{ftp:?}");
        assert!(matches!(location(Path::new("s3://bucket/key.pt")), Ok(Location::Remote(_))));
    }
}
