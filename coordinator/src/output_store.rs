//! `--output-dir` in object storage (s3://BUCKET/PREFIX, gs://, az://): each job's files are
//! written into a local spool first, as for a local output directory, then uploaded. The
//! spool copy stays until the job's retention ends, so a failed upload loses nothing: the job
//! says where its output is kept, and StreamResults serves it from Redis as always.

use std::path::Path;

use lorabeam_storage::{Remote, Result as StorageResult};

/// The store and prefix the outputs go to.
#[derive(Debug, Clone)]
pub struct OutputStore {
    prefix: Remote,
}

/// The files a finished job publishes, by name under the prefix.
pub fn output_names(job_id: &str) -> [String; 3] {
    [format!("{job_id}.jsonl"), format!("{job_id}.failures.jsonl"), format!("{job_id}.scores.json")]
}

impl OutputStore {
    pub fn new(prefix: Remote) -> Self {
        OutputStore { prefix }
    }

    pub fn url(&self) -> &str {
        self.prefix.url()
    }

    /// Writes and removes a probe object, so a coordinator that could not publish outputs (no
    /// such bucket, read-only credentials) says so when it starts, not after a job has run.
    pub async fn check_writable(&self) -> StorageResult<()> {
        let probe = self.prefix.child(&format!(".lorabeam-write-check-{}", uuid::Uuid::new_v4().simple()));
        probe.put(b"lorabeam checks it may write here\n".to_vec()).await?;
        probe.delete().await
    }

    /// Uploads the job's files that exist in `spool` (its output, failure list and scores), the
    /// output last; returns the output's URL. Each object appears whole or not at all.
    pub async fn publish(&self, spool: &Path, job_id: &str) -> StorageResult<String> {
        let [output, failures, scores] = output_names(job_id);
        for name in [&failures, &scores] {
            let local = spool.join(name);
            if local.exists() {
                self.prefix.child(name).upload_file(&local).await?;
            }
        }
        let object = self.prefix.child(&output);
        let meta = object.upload_file(&spool.join(&output)).await?;
        tracing::info!(%job_id, url = %object.url(), bytes = meta.size, etag = %meta.etag, "output uploaded");
        Ok(object.url().to_string())
    }

    /// Removes a cancelled job's objects: a cancel during finalization publishes nothing.
    pub async fn withdraw(&self, job_id: &str) {
        for name in output_names(job_id) {
            if let Err(e) = self.prefix.child(&name).delete().await {
                tracing::warn!(%job_id, error = %e, "could not withdraw an uploaded output");
            }
        }
    }
}
