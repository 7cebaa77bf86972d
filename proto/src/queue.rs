//! The Redis queue schema: key names, stream fields and the shard message, shared by the
//! coordinator (which writes them) and the workers (which read them).
//!
//! - `{prefix}:queue:{model_id}` — a stream per model id, read by the consumer group
//!   [`WORKER_GROUP`]. Each entry is one shard; its pending entry is the worker's lease.
//! - `{prefix}:job:{job_id}` — a hash: the job's spec and counters (see [`job_fields`]).
//! - `{prefix}:job:{job_id}:results` — a hash from item index to its prediction; writing it
//!   with `HSETNX` makes result intake idempotent when a shard runs twice.
//! - `{prefix}:jobs` — a sorted set of job ids by creation time.
//! - `{prefix}:idempotency:{key}` — the job id a client's idempotency key created.

use serde::{Deserialize, Serialize};

use crate::DecodeParams;

/// The consumer group every worker of a model reads its stream through.
pub const WORKER_GROUP: &str = "workers";

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
    pub const SHARDS_DONE: &str = "shards_done";
    pub const GENERATED_TOKENS: &str = "generated_tokens";
    pub const ERROR: &str = "error";
    pub const CREATED_MS: &str = "created_ms";
    pub const FINISHED_MS: &str = "finished_ms";
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

    pub fn job(&self, job_id: &str) -> String {
        format!("{}:job:{job_id}", self.prefix)
    }

    pub fn results(&self, job_id: &str) -> String {
        format!("{}:job:{job_id}:results", self.prefix)
    }

    pub fn jobs(&self) -> String {
        format!("{}:jobs", self.prefix)
    }

    pub fn idempotency(&self, key: &str) -> String {
        format!("{}:idempotency:{key}", self.prefix)
    }
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

/// A unit of work in a model's stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardMessage {
    pub job_id: String,
    pub shard_id: String,
    pub params: DecodeParams,
    pub items: Vec<ShardItem>,
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
    fn shard_message_round_trips_through_json() {
        let shard = ShardMessage {
            job_id: "j1".into(),
            shard_id: "j1-0003".into(),
            params: DecodeParams::default(),
            items: vec![
                ShardItem { item: 7, context: vec![1, 2, 3], first_step_context: None },
                ShardItem { item: 8, context: vec![4, 5], first_step_context: Some(vec![1, 2]) },
            ],
        };
        let json = serde_json::to_string(&shard).expect("serialize");
        assert!(!json.contains("\"first_step_context\":null"), "absent first steps are omitted: {json}");
        assert_eq!(serde_json::from_str::<ShardMessage>(&json).expect("parse"), shard);
    }
}
