//! What a worker may report: only shards it holds a lease on (a queue entry pending for the
//! consumer its Report stream declared), only that shard's items, and only predictions the
//! job could have produced. The shard an entry holds is read from the model's stream once and
//! kept (an entry never changes); whether the lease is still the worker's is checked by the
//! store scripts, in the same atomic step as the write.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use lorabeam_core::ModelLimits;
use lorabeam_proto::queue::{
    is_entry_id, stream_fields, ShardMessage, CONSUMER_METADATA, CONSUMER_SECRET_METADATA, MAX_CONSUMER_BYTES,
    WORKER_GROUP,
};
use tonic::metadata::MetadataMap;

use crate::error::{CoordinatorError, Result};

/// Compares two secrets in time that does not depend on where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
use crate::store::JobStore;

/// Shards kept in memory at most; past it the cache starts again (it is only a cache).
const MAX_CACHED_SHARDS: usize = 100_000;

/// The consumer a Report stream declared in its metadata: every report on it is checked
/// against the leases of this consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer(String);

impl Consumer {
    /// The consumer of a Report stream: present, UTF-8, at most [`MAX_CONSUMER_BYTES`].
    pub fn from_metadata(metadata: &MetadataMap) -> Result<Self> {
        let missing = || {
            CoordinatorError::BadWorkerReport(format!(
                "the Report stream must name its queue consumer in `{CONSUMER_METADATA}` metadata"
            ))
        };
        let value = metadata.get_bin(CONSUMER_METADATA).ok_or_else(missing)?;
        let bytes = value.to_bytes().map_err(|_| missing())?;
        let name = std::str::from_utf8(&bytes).map_err(|_| missing())?;
        if name.is_empty() || name.len() > MAX_CONSUMER_BYTES {
            return Err(CoordinatorError::BadWorkerReport(format!(
                "the consumer name must be 1 to {MAX_CONSUMER_BYTES} bytes, not {}",
                name.len()
            )));
        }
        Ok(Self(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the coordinator checks a job's reports against.
#[derive(Debug)]
pub struct JobFacts {
    /// The model's stream, where the job's shards (and their leases) are.
    pub queue: String,
    pub vocab_size: usize,
}

/// One shard as its queue entry holds it.
#[derive(Debug)]
pub struct LeasedShard {
    pub job_id: String,
    pub shard_id: String,
    /// The shard's items, in order (ShardFinished checks each has an outcome).
    pub items: Vec<u32>,
    item_set: HashSet<u32>,
    eval_len: usize,
    eos: Vec<u32>,
}

impl LeasedShard {
    fn new(shard: ShardMessage) -> Self {
        let items: Vec<u32> = shard.items.iter().map(|i| i.item).collect();
        let mut eos = vec![lorabeam_core::params::GPT2_EOS_TOKEN_ID];
        eos.extend_from_slice(&shard.params.extra_eos_token_ids);
        Self {
            job_id: shard.job_id,
            shard_id: shard.shard_id,
            item_set: items.iter().copied().collect(),
            items,
            eval_len: shard.params.eval_len,
            eos,
        }
    }

    pub fn holds(&self, item: u32) -> bool {
        self.item_set.contains(&item)
    }

    /// Why `predict` is not a prediction of this shard's job, if it is not: the engine writes
    /// exactly `eval_len` ids of the model's vocabulary, and after the first end-of-sequence id
    /// only the zeros it pads with.
    pub fn check_prediction(&self, predict: &[u32], vocab_size: usize) -> std::result::Result<(), String> {
        if predict.len() != self.eval_len {
            return Err(format!("{} token ids, not the job's eval_len {}", predict.len(), self.eval_len));
        }
        if let Some((at, id)) = predict.iter().enumerate().find(|(_, &t)| t as usize >= vocab_size) {
            return Err(format!("token id {id} at {at} is not in the model's vocabulary of {vocab_size}"));
        }
        if let Some(eos) = predict.iter().position(|t| self.eos.contains(t)) {
            if let Some(at) = predict[eos + 1..].iter().position(|&t| t != 0) {
                return Err(format!(
                    "id {} at {} follows the end of sequence at {eos}: only padding zeros may",
                    predict[eos + 1 + at],
                    eos + 1 + at
                ));
            }
        }
        Ok(())
    }
}

/// Shards by (model stream, entry id).
type ShardCache = HashMap<(String, String), Arc<LeasedShard>>;

#[derive(Clone)]
pub struct Leases {
    store: JobStore,
    jobs: Arc<Mutex<HashMap<String, Arc<JobFacts>>>>,
    shards: Arc<Mutex<ShardCache>>,
}

impl Leases {
    pub fn new(store: JobStore) -> Self {
        Self { store, jobs: Arc::default(), shards: Arc::default() }
    }

    /// A job's facts; `None` when the job is gone (its reports are dropped, as ever).
    pub async fn job(&self, job_id: &str) -> Result<Option<Arc<JobFacts>>> {
        if let Some(facts) = lock(&self.jobs).get(job_id) {
            return Ok(Some(facts.clone()));
        }
        let spec = match self.store.spec(job_id).await {
            Ok(spec) => spec,
            Err(CoordinatorError::JobNotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let vocab_size = self.store.model_limits(&spec.model_id).await?.unwrap_or(ModelLimits::GPT2).vocab_size;
        let facts = Arc::new(JobFacts { queue: self.store.keys.queue(&spec.model_id), vocab_size });
        lock(&self.jobs).insert(job_id.to_string(), facts.clone());
        Ok(Some(facts))
    }

    /// The shard queue entry `entry_id` holds; `None` when the entry is gone from the stream
    /// (its job was cancelled, or the shard was finished and acked).
    pub async fn shard(&self, facts: &JobFacts, entry_id: &str) -> Result<Option<Arc<LeasedShard>>> {
        if !is_entry_id(entry_id) {
            let shown = lorabeam_core::quote::quote(entry_id);
            return Err(CoordinatorError::BadWorkerReport(format!("{shown} is not a queue entry id")));
        }
        let key = (facts.queue.clone(), entry_id.to_string());
        if let Some(shard) = lock(&self.shards).get(&key) {
            return Ok(Some(shard.clone()));
        }
        let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(&facts.queue)
            .arg(entry_id)
            .arg(entry_id)
            .query_async(&mut self.store.con.clone())
            .await?;
        let Some(entry) = entries.ids.into_iter().next() else { return Ok(None) };
        let body: Option<String> = entry.get(stream_fields::SHARD);
        let Some(shard) = body.and_then(|b| serde_json::from_str::<ShardMessage>(&b).ok()) else {
            return Err(CoordinatorError::BadWorkerReport(format!("queue entry {entry_id} holds no shard")));
        };
        let shard = Arc::new(LeasedShard::new(shard));
        let mut shards = lock(&self.shards);
        if shards.len() >= MAX_CACHED_SHARDS {
            shards.clear();
        }
        shards.insert(key, shard.clone());
        Ok(Some(shard))
    }

    /// Forgets a confirmed shard's entry.
    pub fn forget_entry(&self, facts: &JobFacts, entry_id: &str) {
        lock(&self.shards).remove(&(facts.queue.clone(), entry_id.to_string()));
    }

    /// Forgets an ended job (completed, cancelled or expired), and its shards.
    pub fn forget_job(&self, job_id: &str) {
        lock(&self.jobs).remove(job_id);
        lock(&self.shards).retain(|_, shard| shard.job_id != job_id);
    }
}

/// The lease a ShardFinished names: its queue entry, pending for the stream's consumer.
pub struct ShardLease<'a> {
    pub queue: &'a str,
    pub consumer: &'a str,
    pub entry_id: &'a str,
}

/// The leases of a batch of outcomes: the queue entries of their shards.
pub struct BatchLeases<'a> {
    pub queue: &'a str,
    pub consumer: &'a str,
    pub entries: &'a [String],
}

/// What marking a shard done did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Marked {
    /// In the job's done set; `running` when the job still runs.
    Done { running: bool },
    /// The job is gone: nothing was written.
    JobGone,
    /// The entry is not pending for the consumer: nothing was written.
    NotLeased,
    /// This item of the shard has no outcome yet: nothing was written.
    Unfinished(String),
}

impl Leases {
    /// Checks that a Report stream speaks for its consumer: it carries the secret that consumer
    /// registered in Redis when its worker started (and refreshes with every heartbeat). The
    /// worker token lets a client open Report streams; only Redis credentials let it register
    /// a consumer, so a token holder cannot report for another worker's leases.
    pub async fn prove(&self, consumer: &Consumer, metadata: &MetadataMap) -> Result<()> {
        let unproven = |why: &str| CoordinatorError::UnprovenConsumer(format!("consumer {}: {why}", consumer.as_str()));
        let given = metadata
            .get_bin(CONSUMER_SECRET_METADATA)
            .and_then(|v| v.to_bytes().ok())
            .ok_or_else(|| unproven(&format!("the stream carries no `{CONSUMER_SECRET_METADATA}` metadata")))?;
        let key = self.store.keys.consumer_secret(consumer.as_str());
        let registered: Option<Vec<u8>> = redis::cmd("GET").arg(key).query_async(&mut self.store.con.clone()).await?;
        let Some(registered) = registered else {
            return Err(unproven(
                "no live worker registered it (a worker registers its consumer at start and with every heartbeat)",
            ));
        };
        if !same_secret(&registered, &given) {
            return Err(unproven("the secret is not the one its worker registered"));
        }
        Ok(())
    }

    /// Records that every item of a shard has an outcome, if the lease is the consumer's and
    /// that holds (checked and written in one script).
    pub async fn mark_shard_done(&self, job_id: &str, lease: &ShardLease<'_>, shard: &LeasedShard) -> Result<Marked> {
        let keys = &self.store.keys;
        let mut invocation = lorabeam_proto::queue_scripts::MARK_SHARD_DONE.prepare_invoke();
        invocation
            .key(keys.job(job_id))
            .key(keys.shards_done(job_id))
            .key(lease.queue)
            .key(keys.results(job_id))
            .key(keys.failed(job_id))
            .arg(WORKER_GROUP)
            .arg(lease.consumer)
            .arg(lease.entry_id)
            .arg(&shard.shard_id)
            .arg(&shard.items);
        let (code, detail): (i64, Option<String>) = invocation.invoke_async(&mut self.store.con.clone()).await?;
        Ok(match code {
            1 => Marked::Done { running: lorabeam_proto::job_state::JobPhase::name_takes_results(detail.as_deref()) },
            -3 => Marked::NotLeased,
            -4 => Marked::Unfinished(detail.unwrap_or_default()),
            _ => Marked::JobGone,
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lorabeam_core::DecodeParams;
    use lorabeam_proto::queue::ShardItem;

    fn shard() -> LeasedShard {
        let params = DecodeParams { eval_len: 4, extra_eos_token_ids: vec![628], ..Default::default() };
        let items = [3, 4].map(|item| ShardItem { item, context: vec![1], first_step_context: None });
        LeasedShard::new(ShardMessage {
            job_id: "j".into(),
            shard_id: "s000000".into(),
            params,
            items: items.into(),
            adapter: String::new(),
        })
    }

    #[test]
    fn predictions_are_checked_against_the_job() {
        let shard = shard();
        assert!(shard.holds(3) && !shard.holds(5));
        for good in [[1, 2, 3, 4], [1, 50256, 0, 0], [628, 0, 0, 0], [0, 0, 0, 0]] {
            assert_eq!(shard.check_prediction(&good, 50257), Ok(()), "{good:?}");
        }
        let err = |p: &[u32]| shard.check_prediction(p, 50257).expect_err("refused");
        assert!(err(&[1, 2, 3]).contains("3 token ids, not the job's eval_len 4"));
        assert!(err(&[1; 1000]).contains("1000 token ids"));
        assert!(err(&[1, 50257, 0, 0]).contains("token id 50257 at 1 is not in"));
        assert!(err(&[u32::MAX, 0, 0, 0]).contains("4294967295"));
        assert!(err(&[1, 50256, 0, 7]).contains("id 7 at 3 follows the end of sequence at 1"));
        assert!(err(&[628, 5, 0, 0]).contains("follows the end of sequence at 0"));
    }
}
