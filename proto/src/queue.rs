//! The Redis queue schema: key names, stream fields and the shard message, shared by the
//! coordinator (which writes them) and the workers (which read them).
//!
//! - `{prefix}:queue:{model_id}` — a stream per model id, read by the consumer group
//!   [`WORKER_GROUP`]. Each entry is one shard; its pending entry is the worker's lease.
//! - `{prefix}:job:{job_id}` — a hash: the job's spec and counters (see [`job_fields`]).
//! - `{prefix}:job:{job_id}:results` — a hash from item index to its prediction; writing it
//!   with `HSETNX` makes result intake idempotent when a shard runs twice.
//! - `{prefix}:job:{job_id}:failed` — a hash from item index to the reason it failed.
//! - `{prefix}:job:{job_id}:plan` — for each record (line) in order, its item index, as
//!   little-endian `u32`s: how the ordered output is put back together.
//! - `{prefix}:job:{job_id}:shards_done` — a set of the shard ids whose every item is stored.
//! - `{prefix}:job:{job_id}:entries` — a list of the job's stream entry ids (cancel deletes them).
//! - `{prefix}:job:{job_id}:references` — for a job submitted with `score`, the JSON of
//!   `lorabeam_core::text::E2eReferences`: each context group's references and the record
//!   whose prediction is its hypothesis.
//! - `{prefix}:jobs` — a sorted set of job ids by creation time.
//! - `{prefix}:models` — a set of the model ids that have a stream, so the metrics read each
//!   queue without scanning the key space.
//! - `{prefix}:idempotency:{key}` — the job id a client's idempotency key created.
//! - `{prefix}:client:{client}:jobs` — a sorted set of the jobs a client (peer address)
//!   submitted that may still run, by admission time: the per-client limit is counted on it
//!   atomically (see `queue_scripts::CREATE_JOB`), and it is pruned there too.
//! - `{prefix}:model:{model_id}` — a hash of the limits a worker serving the model registered
//!   (see [`model_fields`]), so the coordinator checks jobs against the real model.
//! - `{prefix}:registered_models` — a set of every model id a worker registered or
//!   heartbeated: with the coordinator's `--serve-model-ids`, the ids it takes jobs for. An id
//!   no worker has served for the coordinator's retention is removed from it.
//! - `{prefix}:models_last_served` — a sorted set of the registered model ids by the last
//!   heartbeat of any of their workers (Unix ms): what that expiry reads.
//! - `{prefix}:worker:{model_id}:{worker}` — a live worker's heartbeat, a hash (see
//!   [`crate::heartbeat`]) rewritten every heartbeat interval with a TTL of a few intervals:
//!   present while the worker lives, gone soon after it dies.
//! - `{prefix}:model:{model_id}:workers` — a sorted set of the workers that heartbeated for the
//!   model, by last heartbeat (ms): the index the coordinator lists heartbeats from without
//!   scanning; members whose heartbeat key expired are pruned as it reads them.

use serde::{Deserialize, Serialize};

use lorabeam_core::DecodeParams;

/// The consumer group every worker of a model reads its stream through.
pub const WORKER_GROUP: &str = "workers";

/// gRPC metadata of a worker's Report stream naming its consumer in [`WORKER_GROUP`]: the
/// coordinator takes reports only for shards whose pending entry that consumer owns. Binary
/// (`-bin`), so any worker name fits.
pub const CONSUMER_METADATA: &str = "lorabeam-consumer-bin";
/// Report-stream metadata: the secret the worker registered for its consumer name in Redis
/// ([`Keys::consumer_secret`]). Only a holder of Redis credentials can register one, so a
/// holder of the worker token alone cannot speak for another worker's consumer.
pub const CONSUMER_SECRET_METADATA: &str = "lorabeam-consumer-secret-bin";

/// Longest consumer name a worker may declare, in bytes.
pub const MAX_CONSUMER_BYTES: usize = 256;

/// Whether `id` is a stream entry id as Redis makes them (`<ms>-<seq>`): a worker's report
/// names its lease by it, and it goes into Redis commands only after this check.
pub fn is_entry_id(id: &str) -> bool {
    let digits = |s: &str| (1..=20).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    id.split_once('-').is_some_and(|(ms, seq)| digits(ms) && digits(seq))
}

/// Fields of a stream entry.
pub mod stream_fields {
    /// The JSON-encoded [`ShardMessage`](super::ShardMessage).
    pub const SHARD: &str = "shard";
    /// W3C `traceparent` of the span that enqueued the shard, so workers join the job's trace.
    pub const TRACEPARENT: &str = "traceparent";
}

/// Fields of the job hash.
pub mod job_fields {
    pub const SPEC: &str = "spec";
    pub const STATE: &str = "state";
    pub const RECORDS: &str = "records";
    pub const ITEMS: &str = "items";
    pub const SHARDS: &str = "shards";
    pub const RECORDS_DONE: &str = "records_done";
    pub const ITEMS_DONE: &str = "items_done";
    pub const GENERATED_TOKENS: &str = "generated_tokens";
    pub const ERROR: &str = "error";
    pub const CREATED_MS: &str = "created_ms";
    pub const FINISHED_MS: &str = "finished_ms";
    /// Path of the finished output file.
    pub const OUTPUT: &str = "output";
    /// Who submitted the job (peer address), for per-client limits.
    pub const CLIENT: &str = "client";
    /// W3C trace context of the SubmitJob span: the job's completion joins its trace.
    pub const TRACEPARENT: &str = "traceparent";
    /// A scored job's scores: the JSON of `lorabeam_core::eval::E2eScores`.
    pub const SCORES: &str = "scores";
    /// Why a job submitted with `score` could not be scored.
    pub const SCORES_ERROR: &str = "scores_error";
    /// The token of the coordinator finalizing the job (see `job_state`).
    pub const FINALIZER: &str = "finalizer";
    /// When that finalizer's lease runs out (ms since the epoch) unless it renews it.
    pub const FINALIZER_UNTIL: &str = "finalizer_until";
}

/// Fields of the model hash.
pub mod model_fields {
    pub const VOCAB_SIZE: &str = "vocab_size";
    pub const N_POSITIONS: &str = "n_positions";
    /// The lease (ms) the model's workers claim with: a pending entry idle this long is taken
    /// over by the next claim, so the coordinator can say when a dead worker's lease ends.
    pub const LEASE_MS: &str = "lease_ms";
}

/// Values of [`job_fields::STATE`]: the names of [`crate::job_state::JobPhase`].
pub mod job_states {
    use crate::job_state::JobPhase;

    pub const QUEUED: &str = JobPhase::Queued.as_str();
    pub const RUNNING: &str = JobPhase::Running.as_str();
    pub const FINALIZING: &str = JobPhase::Finalizing.as_str();
    pub const COMPLETED: &str = JobPhase::Completed.as_str();
    pub const COMPLETED_WITH_FAILURES: &str = JobPhase::CompletedWithFailures.as_str();
    pub const FAILED: &str = JobPhase::Failed.as_str();
    pub const CANCELLED: &str = JobPhase::Cancelled.as_str();
}

/// Key names under one prefix, so several deployments can share a Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Default for Keys {
    fn default() -> Self {
        Self::new("lorabeam")
    }
}

impl Keys {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self { prefix: prefix.into() }
    }

    pub fn queue(&self, model_id: &str) -> String {
        format!("{}:queue:{model_id}", self.prefix)
    }

    /// The secret a live worker registered for its consumer name (expires with its heartbeat).
    pub fn consumer_secret(&self, consumer: &str) -> String {
        format!("{}:consumer:{consumer}:secret", self.prefix)
    }

    pub fn job(&self, job_id: &str) -> String {
        format!("{}:job:{job_id}", self.prefix)
    }

    pub fn results(&self, job_id: &str) -> String {
        format!("{}:job:{job_id}:results", self.prefix)
    }

    pub fn failed(&self, job_id: &str) -> String {
        format!("{}:job:{job_id}:failed", self.prefix)
    }

    pub fn plan(&self, job_id: &str) -> String {
        format!("{}:job:{job_id}:plan", self.prefix)
    }

    /// The version of the job's adapter its first shard decoded with, when workers read
    /// adapters from object storage: later shards must find the same (written by workers,
    /// expiring on its own).
    pub fn adapter_version(&self, job_id: &str) -> String {
        format!("{}:job:{job_id}:adapter_version", self.prefix)
    }

    pub fn shards_done(&self, job_id: &str) -> String {
        format!("{}:job:{job_id}:shards_done", self.prefix)
    }

    pub fn entries(&self, job_id: &str) -> String {
        format!("{}:job:{job_id}:entries", self.prefix)
    }

    pub fn references(&self, job_id: &str) -> String {
        format!("{}:job:{job_id}:references", self.prefix)
    }

    /// Every key that holds one job's state (not its idempotency key).
    pub fn all_of_job(&self, job_id: &str) -> [String; 7] {
        [
            self.job(job_id),
            self.results(job_id),
            self.failed(job_id),
            self.plan(job_id),
            self.shards_done(job_id),
            self.entries(job_id),
            self.references(job_id),
        ]
    }

    pub fn model(&self, model_id: &str) -> String {
        format!("{}:model:{model_id}", self.prefix)
    }

    pub fn registered_models(&self) -> String {
        format!("{}:registered_models", self.prefix)
    }

    /// The registered model ids by when a worker last served them.
    pub fn models_last_served(&self) -> String {
        format!("{}:models_last_served", self.prefix)
    }

    /// A worker's heartbeat hash.
    pub fn worker(&self, model_id: &str, worker: &str) -> String {
        format!("{}:worker:{model_id}:{worker}", self.prefix)
    }

    /// The index of a model's heartbeating workers.
    pub fn model_workers(&self, model_id: &str) -> String {
        format!("{}:model:{model_id}:workers", self.prefix)
    }

    /// Adapters a model's workers found bad: a hash of name → [`crate::adapter_marks::BadAdapter`].
    pub fn bad_adapters(&self, model_id: &str) -> String {
        format!("{}:model:{model_id}:adapters:bad", self.prefix)
    }

    /// Adapters a model's workers are loading now: a hash of name →
    /// [`crate::adapter_marks::AdapterLoading`].
    pub fn loading_adapters(&self, model_id: &str) -> String {
        format!("{}:model:{model_id}:adapters:loading", self.prefix)
    }

    pub fn jobs(&self) -> String {
        format!("{}:jobs", self.prefix)
    }

    /// Jobs not yet ended (running or finalizing), scored by creation time: what maintenance
    /// and metrics walk, so their cost follows the open jobs, not every job retained.
    pub fn open_jobs(&self) -> String {
        format!("{}:jobs:open", self.prefix)
    }

    /// Ended jobs as `STATE:JOB_ID`, scored by when their retention runs out (ms).
    pub fn ended_jobs(&self) -> String {
        format!("{}:jobs:ended", self.prefix)
    }

    /// How many retained jobs are in each state (kept by the state scripts).
    pub fn job_states(&self) -> String {
        format!("{}:jobs:states", self.prefix)
    }

    /// Set once the three indexes above hold every retained job.
    pub fn jobs_indexed(&self) -> String {
        format!("{}:jobs:indexed", self.prefix)
    }

    pub fn models(&self) -> String {
        format!("{}:models", self.prefix)
    }

    /// The key prefix of job hashes: [`Keys::job`] is this and the job id.
    pub fn job_prefix(&self) -> String {
        format!("{}:job:", self.prefix)
    }

    pub fn client_jobs(&self, client: &str) -> String {
        format!("{}:client:{client}:jobs", self.prefix)
    }

    pub fn idempotency(&self, key: &str) -> String {
        format!("{}:idempotency:{key}", self.prefix)
    }
}

/// Creates the model's stream and its worker group if missing, and lists the model in
/// [`Keys::models`]. The group starts at id 0, so it sees every entry ever added. Coordinator
/// and workers both call it, so either may start first.
pub async fn ensure_queue(
    con: &mut impl redis::aio::ConnectionLike,
    keys: &Keys,
    model_id: &str,
) -> redis::RedisResult<()> {
    let created: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(keys.queue(model_id))
        .arg(WORKER_GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(con)
        .await;
    match created {
        Err(e) if e.code() != Some("BUSYGROUP") => return Err(e),
        _ => {}
    }
    redis::cmd("SADD").arg(keys.models()).arg(model_id).query_async(con).await
}

/// One distinct decode input of a job, as a worker receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardItem {
    /// Index of the item in the job (results are keyed by it).
    pub item: u32,
    /// The truncated context.
    pub context: Vec<u32>,
    /// gpt2_beam.py's batch_size > 1 first-step context, when it differs from `context`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_step_context: Option<Vec<u32>>,
}

/// A job's spec as the coordinator keeps it (field [`job_fields::SPEC`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredJobSpec {
    pub model_id: String,
    pub name: String,
    pub params: DecodeParams,
    pub shard_size: usize,
    pub reference_batch_size: usize,
    pub exact_first_step: bool,
    #[serde(default)]
    pub idempotency_key: String,
    /// Score the output against the records' completions when the job completes.
    #[serde(default)]
    pub score: bool,
    /// `bytes:fnv1a64` of the submitted data, so a reused idempotency key with other data is
    /// told apart ("" in jobs stored before it was kept).
    #[serde(default)]
    pub data_fingerprint: String,
    /// The adapter the job decodes with, by name ("": the bare base, and in jobs stored before
    /// adapters were kept).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub adapter: String,
    /// How a scored job is scored: "" (e2e), "webnlg" or "dart"; with its `ref_num` and
    /// WebNLG `filter` ("": the default rows). Absent in jobs stored before tasks were kept.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub task: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ref_num: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub filter: String,
    /// Data the coordinator read from object storage (JobSpec.data_url): the URL, and the
    /// ETag and size of the object as read ("" and 0 for data sent in the stream).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub data_url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub data_etag: String,
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub data_bytes: u64,
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A scored job's scores as [`job_fields::SCORES`] holds them (JSON), the 4-decimal values
/// measure_scores.py prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredScores {
    pub bleu: f64,
    pub nist: f64,
    pub meteor: Option<f64>,
    #[serde(default)]
    pub meteor_unavailable: String,
    pub rouge_l: f64,
    pub cider: f64,
    pub groups: u32,
    /// A webnlg or dart job's report (`lorabeam score --task TASK --json`); "" for E2E.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub task_report_json: String,
}

impl From<&StoredScores> for crate::v1::Scores {
    fn from(s: &StoredScores) -> Self {
        Self {
            bleu: s.bleu,
            nist: s.nist,
            meteor: s.meteor,
            meteor_unavailable: s.meteor_unavailable.clone(),
            rouge_l: s.rouge_l,
            cider: s.cider,
            groups: s.groups,
            task_report_json: s.task_report_json.clone(),
        }
    }
}

/// A job's scores from the wire, as the core prints them (METEOR's absence keeps its reason).
impl From<&crate::v1::Scores> for lorabeam_core::eval::E2eScores {
    fn from(s: &crate::v1::Scores) -> Self {
        let unavailable = || lorabeam_core::eval::MeteorUnavailable::new(s.meteor_unavailable.clone());
        Self {
            bleu: s.bleu,
            nist: s.nist,
            meteor: s.meteor.ok_or_else(unavailable),
            rouge_l: s.rouge_l,
            cider: s.cider,
        }
    }
}

/// Token ids as a Redis field holds them: decimal, comma-separated (readable in `redis-cli`).
pub fn format_token_field(tokens: &[u32]) -> String {
    let mut out = String::with_capacity(tokens.len() * 6);
    for (i, token) in tokens.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&token.to_string());
    }
    out
}

/// The inverse of [`format_token_field`]; `None` for anything it did not write.
pub fn parse_token_field(text: &str) -> Option<Vec<u32>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split(',').map(|t| t.parse().ok()).collect()
}

/// A record-to-item plan as stored under [`Keys::plan`]; refused when an item index does not
/// fit the stored `u32`.
pub fn encode_plan(index_of_record: &[usize]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(index_of_record.len() * 4);
    for &item in index_of_record {
        let item = u32::try_from(item).map_err(|_| format!("item index {item} does not fit the stored plan's u32"))?;
        out.extend_from_slice(&item.to_le_bytes());
    }
    Ok(out)
}

/// The inverse of [`encode_plan`]; `None` when the length is not a multiple of 4.
pub fn decode_plan(bytes: &[u8]) -> Option<Vec<u32>> {
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    Some(bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

/// A unit of work in a model's stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardMessage {
    pub job_id: String,
    pub shard_id: String,
    pub params: DecodeParams,
    pub items: Vec<ShardItem>,
    /// The job's adapter, by name: the worker merges it into its base ("": the bare base;
    /// omitted then, so shards of base jobs read as before).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub adapter: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_namespaced() {
        let keys = Keys::new("lb");
        assert_eq!(keys.queue("e2e-md"), "lb:queue:e2e-md");
        assert_eq!(keys.results("j1"), "lb:job:j1:results");
        assert_eq!(Keys::default().jobs(), "lorabeam:jobs");
    }

    #[test]
    fn entry_ids_are_checked() {
        assert!(is_entry_id("1700000000000-0") && is_entry_id("1-18446744073709551615"));
        for bad in ["", "-", "1-", "-1", "1-2-3", "a-1", "1 -2", &format!("1-{}", "9".repeat(21))] {
            assert!(!is_entry_id(bad), "{bad}");
        }
    }

    #[test]
    fn tokens_and_plans_round_trip() {
        for tokens in [vec![], vec![0], vec![50256, 1, 628]] {
            assert_eq!(parse_token_field(&format_token_field(&tokens)), Some(tokens));
        }
        assert_eq!(parse_token_field("1,x"), None);
        assert_eq!(decode_plan(&encode_plan(&[0, 1, 70000]).expect("fits")), Some(vec![0, 1, 70000]));
        assert!(encode_plan(&[1 << 32]).is_err(), "refused, not truncated");
        assert_eq!(decode_plan(&[1, 2, 3]), None);
    }

    #[test]
    fn shard_message_round_trips_through_json() {
        let shard = ShardMessage {
            job_id: "j1".into(),
            shard_id: "j1-0003".into(),
            params: DecodeParams::default(),
            items: vec![
                ShardItem { item: 7, context: vec![1, 2, 3], first_step_context: None },
                ShardItem { item: 8, context: vec![4, 5], first_step_context: Some(vec![1, 2]) },
            ],
            adapter: String::new(),
        };
        let json = serde_json::to_string(&shard).expect("serialize");
        assert!(!json.contains("\"first_step_context\":null"), "absent first steps are omitted: {json}");
        assert!(!json.contains("adapter"), "a base shard reads as before: {json}");
        assert_eq!(serde_json::from_str::<ShardMessage>(&json).expect("parse"), shard);
        let adapted = ShardMessage { adapter: "step-2000".into(), ..shard };
        let json = serde_json::to_string(&adapted).expect("serialize");
        assert!(json.contains("\"adapter\":\"step-2000\""), "{json}");
        assert_eq!(serde_json::from_str::<ShardMessage>(&json).expect("parse"), adapted);
    }
}
