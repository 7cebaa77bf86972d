//! Object storage for lorabeam: the test sets, checkpoints, adapters and outputs that cloud
//! users keep in buckets (`s3://` and S3-compatible stores, `gs://`, `az://`), through the
//! `object_store` crate.
//!
//! Credentials come from each provider's usual environment (`AWS_*`, including
//! `AWS_ENDPOINT_URL` and `AWS_ALLOW_HTTP` for an S3-compatible server and
//! `AWS_WEB_IDENTITY_TOKEN_FILE` for workload identity; `GOOGLE_*`; `AZURE_*`) and the instance's
//! metadata service, or from files named as those variables in
//! `LORABEAM_OBJECT_STORE_CREDENTIALS_DIR` (a mounted Secret); they are never logged, and no
//! error carries them.
//!
//! Everything here names the object by its URL in errors, and an object read for a job is read
//! once, whole, with its ETag, so a job knows exactly which bytes it used.

mod cache;
mod credentials;
mod error;
mod location;
mod remote;

pub use cache::{version_tag, CacheEntry, ObjectCache};
pub use credentials::CREDENTIALS_DIR_VAR;
pub use error::{Result, StorageError};
pub use location::{is_url, Location};
pub use remote::{Meta, Remote};
