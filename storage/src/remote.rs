//! One object (or a folder of them, by prefix) in a store, named by its URL.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, GetOptions, ObjectStore, PutPayload, RetryConfig, WriteMultipart};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::credentials::credential_files;
use crate::{Result, StorageError};

/// Parts of a multipart upload: S3's smallest but the last is 5 MiB.
const PART_BYTES: usize = 8 << 20;
/// Parts uploading at once.
const PARTS_IN_FLIGHT: usize = 4;

/// What a job records of an object it used: which version (the store's ETag) and how large.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// Empty when the store gives none (a local filesystem store may not).
    pub etag: String,
    pub size: u64,
}

impl Meta {
    fn of(meta: &object_store::ObjectMeta) -> Self {
        Meta { etag: meta.e_tag.clone().unwrap_or_default(), size: meta.size }
    }
}

/// An object in a store: the store's client (credentials from the environment) and the key.
#[derive(Clone)]
pub struct Remote {
    url: String,
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Remote").field(&self.url).finish()
    }
}

/// Requests that fail for the network (not for an answer like 403 or 404) are retried a few
/// times, not for object_store's default three minutes: a user waiting on a job wants the
/// error, and a worker's claim on a shard must not lapse while it waits.
fn retry() -> RetryConfig {
    RetryConfig {
        // 0.2, 0.4, 0.8, 1.6, 3.2 s: a store that dropped a pooled connection, or answered
        // slowly under load, gets a few seconds, not a few hundred milliseconds.
        backoff: BackoffConfig { init_backoff: Duration::from_millis(200), ..BackoffConfig::default() },
        max_retries: 5,
        retry_timeout: Duration::from_secs(30),
    }
}

impl Remote {
    /// A client for `value`'s store, credentials read from the environment as each provider's
    /// own tools read them. Nothing is requested yet.
    pub fn open(value: &str) -> Result<Remote> {
        let bad = |reason: String| StorageError::BadUrl { url: value.to_string(), reason };
        let url = url::Url::parse(value).map_err(|e| bad(e.to_string()))?;
        let bucket = url.host_str().unwrap_or_default();
        if bucket.is_empty() {
            return Err(bad("names no bucket (s3://BUCKET/KEY)".into()));
        }
        let key = url.path().trim_start_matches('/');
        let path = ObjectPath::from_url_path(key).map_err(|e| bad(e.to_string()))?;
        let scheme = url.scheme().to_ascii_lowercase();
        let base = format!("{scheme}://{bucket}/");
        // Credentials in files (see `credentials`) are applied over the environment's.
        let built = match scheme.as_str() {
            "s3" | "s3a" => with_files(AmazonS3Builder::from_env(), "aws_", |b, k, v| b.with_config(k, v))?
                .with_url(&base)
                .with_retry(retry())
                .build()
                .map(to_dyn),
            "gs" => with_files(GoogleCloudStorageBuilder::from_env(), "google_", |b, k, v| b.with_config(k, v))?
                .with_url(&base)
                .with_retry(retry())
                .build()
                .map(to_dyn),
            _ => with_files(MicrosoftAzureBuilder::from_env(), "azure_", |b, k, v| b.with_config(k, v))?
                .with_url(&base)
                .with_retry(retry())
                .build()
                .map(to_dyn),
        };
        let store = built.map_err(|e| bad(format!("cannot make a client for it: {e}")))?;
        Ok(Remote { url: format!("{base}{key}"), store, path })
    }

    /// The URL without credentials, query or fragment.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The object `name` inside this one taken as a folder (`s3://b/adapters/` + `x.pt`).
    pub fn child(&self, name: &str) -> Remote {
        let path = self.path.child(name);
        let url = format!("{}/{name}", self.url.trim_end_matches('/'));
        Remote { url, store: self.store.clone(), path }
    }

    /// The object's ETag and size.
    pub async fn head(&self) -> Result<Meta> {
        let meta = self.store.head(&self.path).await.map_err(|e| self.error(e))?;
        Ok(Meta::of(&meta))
    }

    /// The whole object, in one request, refused before its body is read when it is over `max`
    /// bytes (or grows past it while read).
    pub async fn read(&self, max: u64) -> Result<(Vec<u8>, Meta)> {
        let got = self.store.get(&self.path).await.map_err(|e| self.error(e))?;
        let meta = Meta::of(&got.meta);
        self.check_size(meta.size, max)?;
        let mut bytes = Vec::with_capacity(usize::try_from(meta.size).unwrap_or(0));
        let mut body = got.into_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| self.error(e))?;
            self.check_size((bytes.len() + chunk.len()) as u64, max)?;
            bytes.extend_from_slice(&chunk);
        }
        Ok((bytes, meta))
    }

    /// Writes the object to `dest` (through a temporary file beside it, renamed when whole).
    /// With `if_match`, a store that now holds another version answers [`StorageError::Changed`].
    pub async fn download(&self, dest: &Path, max: u64, if_match: Option<&str>) -> Result<Meta> {
        let options = GetOptions { if_match: if_match.map(str::to_string), ..GetOptions::default() };
        let got = self.store.get_opts(&self.path, options).await.map_err(|e| match (self.error(e), if_match) {
            (StorageError::Changed { url, .. }, Some(expected)) => {
                StorageError::Changed { url, expected: expected.to_string(), found: "another version".into() }
            }
            (other, _) => other,
        })?;
        let meta = Meta::of(&got.meta);
        self.check_size(meta.size, max)?;
        let dir = dest.parent().unwrap_or(Path::new("."));
        let partial =
            tempfile::Builder::new().prefix(".download-").tempfile_in(dir).map_err(|e| StorageError::local(dir, e))?;
        let mut file = tokio::fs::File::from_std(partial.reopen().map_err(|e| StorageError::local(partial.path(), e))?);
        let mut written = 0u64;
        let mut body = got.into_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| self.error(e))?;
            written += chunk.len() as u64;
            self.check_size(written, max)?;
            file.write_all(&chunk).await.map_err(|e| StorageError::local(partial.path(), e))?;
        }
        file.flush().await.map_err(|e| StorageError::local(partial.path(), e))?;
        if written != meta.size {
            return Err(StorageError::Store {
                url: self.url.clone(),
                detail: format!("the store sent {written} bytes of {}", meta.size),
            });
        }
        partial.persist(dest).map_err(|e| StorageError::local(dest, e.error))?;
        Ok(meta)
    }

    /// The objects under this one taken as a folder, with their names relative to it, sorted.
    pub async fn list(&self) -> Result<Vec<(String, Meta)>> {
        let mut listing = self.store.list(Some(&self.path));
        let mut found = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| self.error(e))?;
            let relative = meta
                .location
                .prefix_match(&self.path)
                .map(|parts| parts.map(|part| part.as_ref().to_string()).collect::<Vec<_>>().join("/"));
            if let Some(name) = relative.filter(|name| !name.is_empty()) {
                found.push((name, Meta::of(&meta)));
            }
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(found)
    }

    /// Uploads `src` as this object in parts; the store shows the object under its name only
    /// when the last part is in (S3's CompleteMultipartUpload, GCS's and Azure's commit), so a
    /// reader never sees half a file. A failed upload is aborted, leaving no parts behind.
    pub async fn upload_file(&self, src: &Path) -> Result<Meta> {
        let mut file = tokio::fs::File::open(src).await.map_err(|e| StorageError::local(src, e))?;
        let upload = self.store.put_multipart(&self.path).await.map_err(|e| self.error(e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut buffer = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let read = match file.read(&mut buffer).await {
                Ok(read) => read,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(StorageError::local(src, e));
                }
            };
            if read == 0 {
                break;
            }
            size += read as u64;
            if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                let _ = writer.abort().await;
                return Err(self.error(e));
            }
            writer.write(&buffer[..read]);
        }
        let done = writer.finish().await.map_err(|e| self.error(e))?;
        Ok(Meta { etag: done.e_tag.unwrap_or_default(), size })
    }

    /// Writes `bytes` as this object in one request (small files: a probe, a scores file).
    pub async fn put(&self, bytes: Vec<u8>) -> Result<Meta> {
        let size = bytes.len() as u64;
        let done = self.store.put(&self.path, PutPayload::from(bytes)).await.map_err(|e| self.error(e))?;
        Ok(Meta { etag: done.e_tag.unwrap_or_default(), size })
    }

    pub async fn delete(&self) -> Result<()> {
        match self.store.delete(&self.path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error(e)),
        }
    }

    fn check_size(&self, size: u64, max: u64) -> Result<()> {
        if size > max {
            return Err(StorageError::TooLarge { url: self.url.clone(), size, max });
        }
        Ok(())
    }

    fn error(&self, error: object_store::Error) -> StorageError {
        StorageError::from_store(&self.url, error)
    }
}

/// `builder` with each credential file whose name is one of its configuration keys.
fn with_files<B, K: std::str::FromStr>(builder: B, prefix: &str, apply: fn(B, K, String) -> B) -> Result<B> {
    let files = credential_files(prefix)?;
    Ok(files
        .into_iter()
        .filter_map(|(name, value)| Some((name.parse().ok()?, value)))
        .fold(builder, |b, (k, v)| apply(b, k, v)))
}

fn to_dyn(store: impl ObjectStore) -> Arc<dyn ObjectStore> {
    Arc::new(store)
}
