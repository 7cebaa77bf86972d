//! `--adapter-dir` in object storage (s3://BUCKET/adapters/, gs://, az://): an adapter named by
//! a job is listed in the store at each shard, fetched into a bounded local cache keyed by its
//! objects' ETags (a changed adapter is fetched again, an unchanged one never), and read from
//! there by the [`AdapterLoader`](super::adapters::AdapterLoader) like one on a volume.
//!
//! A job decodes with one version of its adapter. The first shard pins the version it found in
//! Redis; a shard that finds another (the adapter was replaced while the job ran) fails its
//! items with that reason instead of mixing two adapters' outputs in one file. Inside the
//! worker an adapter is known by `NAME@VERSION`, so the cache and loader never confuse two
//! versions of one name.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use lorabeam_storage::{version_tag, Meta, ObjectCache, Remote, StorageError};

use super::queue::ShardQueue;
use crate::model::adapter::PEFT_CONFIG_FILE;
use crate::model_files::peft_objects;

/// Largest adapter object fetched: LoRA adapters of GPT-2 are megabytes.
const MAX_ADAPTER_OBJECT: u64 = 8 << 30;
/// How long a job's pinned version is kept: far past any job's run.
const PIN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Separates a name from its version inside the worker; adapter names never hold it.
const VERSION_MARK: char = '@';

pub struct RemoteAdapters {
    prefix: Remote,
    cache: ObjectCache,
    /// `NAME@VERSION` of the adapters fetched, and the cache folders holding them.
    fetched: Mutex<HashMap<String, PathBuf>>,
}

impl std::fmt::Debug for RemoteAdapters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteAdapters").field("prefix", &self.prefix).field("cache", &self.cache).finish()
    }
}

/// One version of an adapter in the store: its objects (name in the cache folder, object,
/// ETag and size) and a tag for them all.
struct Version {
    objects: Vec<(String, Remote, Meta)>,
    tag: String,
}

impl RemoteAdapters {
    pub fn new(prefix: Remote, cache: ObjectCache) -> Self {
        Self { prefix, cache, fetched: Mutex::new(HashMap::new()) }
    }

    pub fn url(&self) -> &str {
        self.prefix.url()
    }

    /// Makes adapter `name` of `job_id` ready for the loader: the version the job pinned,
    /// fetched into the cache. Returns the key the loader knows it by, or why it cannot be had.
    pub async fn prepare(&self, queue: &ShardQueue, job_id: &str, name: &str) -> Result<String, String> {
        lorabeam_core::check_adapter_name(name).map_err(|e| e.to_string())?;
        let version = self.version(name).await?;
        let pinned = pin(queue, job_id, &version.tag).await?;
        if pinned != version.tag {
            return Err(format!(
                "adapter `{name}` changed in {} while job {job_id} ran: its first shards decoded version {pinned}, the \
                 store now holds {} (ETags {}); the job's remaining items fail rather than mix two adapters in one \
                 output: submit it again to decode the new version",
                self.prefix.child(name).url(),
                version.tag,
                version.objects.iter().map(|(_, _, meta)| meta.etag.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
        let key = format!("{name}{VERSION_MARK}{}", version.tag);
        if self.folder(&key).is_some() {
            return Ok(key);
        }
        let source = self.prefix.child(name);
        let entry = self
            .cache
            .fetch(source.url(), &version.objects, MAX_ADAPTER_OBJECT)
            .await
            .map_err(|e| format!("adapter `{name}`: {e}"))?;
        if entry.fetched {
            let bytes: u64 = version.objects.iter().map(|(_, _, meta)| meta.size).sum();
            tracing::info!(adapter = %name, version = %version.tag, url = %source.url(), bytes, "adapter fetched from object storage");
        }
        if let Ok(mut fetched) = self.fetched.lock() {
            fetched.insert(key.clone(), entry.dir);
        }
        Ok(key)
    }

    /// The adapter's name and the cache folder holding it, for a key [`prepare`](Self::prepare)
    /// gave; `None` for a key it did not (or whose folder the cache has since evicted).
    pub fn folder(&self, key: &str) -> Option<(String, PathBuf)> {
        let (name, _) = key.split_once(VERSION_MARK)?;
        let dir = self.fetched.lock().ok()?.get(key).cloned()?;
        dir.is_dir().then(|| (name.to_string(), dir))
    }

    /// The adapter as the store holds it now: a PEFT folder `NAME/` (its adapter_config.json
    /// and weights), else a loralib `NAME.pt`.
    async fn version(&self, name: &str) -> Result<Version, String> {
        let folder = self.prefix.child(name);
        let listed = folder.list().await.map_err(|e| format!("adapter `{name}`: {e}"))?;
        let peft =
            peft_objects(&folder, &listed, &format!("{name}/")).map_err(|e| format!("adapter `{name}`: {e:#}"))?;
        let objects = match peft {
            Some(objects) => objects,
            None => {
                let single = self.prefix.child(&format!("{name}.pt"));
                match single.head().await {
                    Ok(meta) => vec![(format!("{name}.pt"), single, meta)],
                    Err(StorageError::NotFound { .. }) => {
                        return Err(format!(
                            "adapter `{name}` not found under --adapter-dir {}: neither {}/{PEFT_CONFIG_FILE} nor {} exists",
                            self.prefix.url(),
                            folder.url(),
                            single.url()
                        ))
                    }
                    Err(e) => return Err(format!("adapter `{name}`: {e}")),
                }
            }
        };
        Ok(Version { tag: version_tag(&objects), objects })
    }
}

/// The version the job decodes with: `tag` if this is its first shard to ask, else the one
/// pinned first. `SET NX` then `GET` (not `SET … GET`, which needs Redis 7): the pin never
/// changes once set, so the read returns the winner.
async fn pin(queue: &ShardQueue, job_id: &str, tag: &str) -> Result<String, String> {
    let key = queue.keys().adapter_version(job_id);
    let failed =
        |e: redis::RedisError| format!("cannot pin the adapter's version in Redis at {}: {e}", queue.address());
    let mut con = queue.connection();
    let _: Option<String> = redis::cmd("SET")
        .arg(&key)
        .arg(tag)
        .arg("NX")
        .arg("EX")
        .arg(PIN_TTL.as_secs())
        .query_async(&mut con)
        .await
        .map_err(failed)?;
    let pinned: Option<String> = redis::cmd("GET").arg(&key).query_async(&mut con).await.map_err(failed)?;
    Ok(pinned.unwrap_or_else(|| tag.to_string()))
}
