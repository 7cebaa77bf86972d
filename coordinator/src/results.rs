//! Results: idempotent intake keyed by (job, item), reading them back in record order, and the
//! ordered output file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use lorabeam_proto::job_state::JobPhase;
use lorabeam_proto::queue::{decode_plan, format_token_field, job_fields as f, parse_token_field, WORKER_GROUP};

use crate::error::{CoordinatorError, Result};
use crate::leases::BatchLeases;
use crate::output_store::OutputStore;
use crate::scoring::{score_job, Meteor};
use crate::store::{JobStore, Transition};
use lorabeam_core::predictions::{write_atomically, write_predictions};

/// What a finalization did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finalized {
    /// The job ended in this state, its output at this path or URL.
    Ended(JobPhase, String),
    /// The job left this finalizer's hands (cancelled, taken over, expired): in this state.
    Lost(String),
}

/// Where a job's ordered output is written.
pub fn output_path(output_dir: &Path, job_id: &str) -> PathBuf {
    output_dir.join(format!("{job_id}.jsonl"))
}

fn failures_path(output_dir: &Path, job_id: &str) -> PathBuf {
    output_dir.join(format!("{job_id}.failures.jsonl"))
}

/// Removes a cancelled job's output files, if a finalizer wrote them: a cancel during
/// finalization publishes nothing.
pub fn withdraw_outputs(output_dir: &Path, job_id: &str) {
    for path in [output_path(output_dir, job_id), failures_path(output_dir, job_id)] {
        match std::fs::remove_file(&path) {
            Ok(()) => tracing::info!(%job_id, path = %path.display(), "withdrew the output of a cancelled job"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(%job_id, path = %path.display(), error = %e, "could not withdraw an output"),
        }
    }
}

/// One item's outcome as a worker reported it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Predicted { item: u32, predict: Vec<u32>, generated_tokens: u64 },
    Failed { item: u32, reason: String },
}

/// What storing a batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// The job has ended (cancelled, expired): results are dropped.
    JobGone,
    /// `added` outcomes were new; `complete` when every item of the job now has one.
    Accepted { added: usize, complete: bool },
    /// The `k`th of the batch's queue entries is not leased to the reporting consumer:
    /// nothing was stored.
    NotLeased(usize),
}

/// A job's record-to-item plan, read once from Redis and kept while the job is in use.
#[derive(Debug)]
pub struct Plan {
    pub item_of_record: Vec<u32>,
    pub records_of_item: Vec<u32>,
}

#[derive(Clone)]
pub struct Results {
    store: JobStore,
    plans: Arc<Mutex<HashMap<String, Arc<Plan>>>>,
}

impl Results {
    pub fn new(store: JobStore) -> Self {
        Self { store, plans: Arc::default() }
    }

    pub async fn plan(&self, job_id: &str) -> Result<Arc<Plan>> {
        if let Some(plan) = self.plans.lock().map_err(|_| poisoned())?.get(job_id) {
            return Ok(plan.clone());
        }
        let bytes: Option<Vec<u8>> =
            redis::cmd("GET").arg(self.store.keys.plan(job_id)).query_async(&mut self.store.con.clone()).await?;
        let bytes = bytes.ok_or_else(|| CoordinatorError::JobNotFound(job_id.to_string()))?;
        let item_of_record = decode_plan(&bytes)
            .ok_or_else(|| CoordinatorError::CorruptState { job_id: job_id.into(), what: "plan length".into() })?;
        let items = item_of_record.iter().map(|&i| i as usize + 1).max().unwrap_or(0);
        let mut records_of_item = vec![0u32; items];
        for &item in &item_of_record {
            records_of_item[item as usize] += 1;
        }
        let plan = Arc::new(Plan { item_of_record, records_of_item });
        self.plans.lock().map_err(|_| poisoned())?.insert(job_id.to_string(), plan.clone());
        Ok(plan)
    }

    /// Drops a finished job's plan from memory.
    pub fn forget(&self, job_id: &str) {
        if let Ok(mut plans) = self.plans.lock() {
            plans.remove(job_id);
        }
    }

    /// Stores outcomes of one job idempotently, if every shard they are of is still leased to
    /// the reporting consumer (checked in the same script as the writes).
    pub async fn store(&self, job_id: &str, leases: &BatchLeases<'_>, outcomes: &[Outcome]) -> Result<Stored> {
        let plan = match self.plan(job_id).await {
            Ok(plan) => plan,
            Err(CoordinatorError::JobNotFound(_)) => return Ok(Stored::JobGone),
            Err(e) => return Err(e),
        };
        check_outcomes(job_id, outcomes)?;
        let keys = &self.store.keys;
        let mut invocation = lorabeam_proto::queue_scripts::STORE_OUTCOMES.prepare_invoke();
        invocation.key(keys.job(job_id)).key(keys.results(job_id)).key(keys.failed(job_id)).key(leases.queue);
        invocation.key(keys.job_states());
        invocation.arg(WORKER_GROUP).arg(leases.consumer).arg(leases.entries.len()).arg(leases.entries);
        for outcome in outcomes {
            let item = match outcome {
                Outcome::Predicted { item, .. } | Outcome::Failed { item, .. } => *item,
            };
            let records = plan
                .records_of_item
                .get(item as usize)
                .copied()
                .ok_or_else(|| CoordinatorError::BadWorkerReport(format!("job {job_id} has no item {item}")))?;
            match outcome {
                Outcome::Predicted { predict, generated_tokens, .. } => {
                    invocation.arg("r").arg(item).arg(format_token_field(predict)).arg(records).arg(generated_tokens)
                }
                Outcome::Failed { reason, .. } => invocation.arg("f").arg(item).arg(reason).arg(records).arg(0),
            };
        }
        let (added, done, items, records, tokens): (i64, u64, u64, u64, u64) =
            invocation.invoke_async(&mut self.store.con.clone()).await?;
        match added {
            -1 => return Ok(Stored::JobGone),
            -3 => return Ok(Stored::NotLeased(done as usize)),
            -2 => {
                let detail = format!("job {job_id}: outcome {done} of the batch has a bad count; nothing was stored");
                return Err(CoordinatorError::BadWorkerReport(detail));
            }
            _ => {}
        }
        crate::metrics::METRICS.records_done.inc_by(records);
        crate::metrics::METRICS.generated_tokens.inc_by(tokens);
        Ok(Stored::Accepted { added: added as usize, complete: done >= items })
    }

    /// Predictions of `records` (ids into the plan), `None` where none is stored yet.
    pub async fn predictions(&self, job_id: &str, records: std::ops::Range<usize>) -> Result<Vec<Option<Vec<u32>>>> {
        let plan = self.plan(job_id).await?;
        let items: Vec<u32> = plan.item_of_record
            [records.start.min(plan.item_of_record.len())..records.end.min(plan.item_of_record.len())]
            .to_vec();
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let values: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.store.keys.results(job_id))
            .arg(&items)
            .query_async(&mut self.store.con.clone())
            .await?;
        values.into_iter().map(|v| v.map(|text| self.tokens(job_id, &text)).transpose()).collect()
    }

    fn tokens(&self, job_id: &str, text: &str) -> Result<Vec<u32>> {
        parse_token_field(text)
            .ok_or_else(|| CoordinatorError::CorruptState { job_id: job_id.into(), what: "result".into() })
    }

    /// Failed items and their reasons.
    pub async fn failures(&self, job_id: &str) -> Result<HashMap<u32, String>> {
        Ok(redis::cmd("HGETALL").arg(self.store.keys.failed(job_id)).query_async(&mut self.store.con.clone()).await?)
    }

    /// Record ids whose item failed, ascending.
    pub async fn failed_records(&self, job_id: &str) -> Result<Vec<u64>> {
        let failed = self.failures(job_id).await?;
        if failed.is_empty() {
            return Ok(Vec::new());
        }
        let plan = self.plan(job_id).await?;
        Ok(plan
            .item_of_record
            .iter()
            .enumerate()
            .filter(|(_, item)| failed.contains_key(item))
            .map(|(record, _)| record as u64)
            .collect())
    }

    /// Writes the ordered JSONL of a job whose every item has an outcome, scores it when it was
    /// submitted with `score`, and ends it (completed, or completed with failures: failed
    /// records are left out of the file and listed in the job's status) if it is still this
    /// `finalizer`'s. Safe to run again after a crash. When the job was cancelled meanwhile its
    /// files are withdrawn.
    pub async fn finalize(
        &self,
        job_id: &str,
        output_dir: &Path,
        meteor: &Meteor,
        output_store: Option<&OutputStore>,
        finalizer: &str,
    ) -> Result<Finalized> {
        let plan = self.plan(job_id).await?;
        let stored: HashMap<u32, String> =
            redis::cmd("HGETALL").arg(self.store.keys.results(job_id)).query_async(&mut self.store.con.clone()).await?;
        let failed = self.failures(job_id).await?;
        let mut predictions: HashMap<u32, Vec<u32>> = HashMap::with_capacity(stored.len());
        for (item, text) in &stored {
            predictions.insert(*item, self.tokens(job_id, text)?);
        }
        let missing = plan.records_of_item.len() - predictions.len() - failed.len();
        if missing > 0 {
            return Err(CoordinatorError::Internal(format!("job {job_id}: {missing} item(s) have no outcome yet")));
        }
        let path = output_path(output_dir, job_id);
        let rows = plan
            .item_of_record
            .iter()
            .enumerate()
            .filter_map(|(record, item)| predictions.get(item).map(|p| (record, p.as_slice())));
        std::fs::create_dir_all(output_dir)
            .map_err(|source| lorabeam_core::WriteError { path: output_dir.to_path_buf(), source })?;
        write_predictions(&path, rows)?;
        if !failed.is_empty() {
            write_failures(&failures_path(output_dir, job_id), &plan, &failed)?;
        }
        let (state, error) = if failed.is_empty() {
            (JobPhase::Completed, None)
        } else {
            let mut reasons: Vec<(&u32, &String)> = failed.iter().collect();
            reasons.sort();
            let (item, reason) = reasons[0];
            // Nothing to show at all is a failed job, not a completed one.
            let state = if predictions.is_empty() { JobPhase::Failed } else { JobPhase::CompletedWithFailures };
            (state, Some(format!("{} item(s) failed; item {item}: {reason}", failed.len())))
        };
        let scores = self.scores(job_id, &plan, predictions, meteor).await?;
        let (output, error) = match output_store {
            None => (path.display().to_string(), error),
            Some(store) => publish(store, output_dir, job_id, &path, &scores, error).await?,
        };
        match self.store.finish(job_id, finalizer, state, Some(&output), error.as_deref(), &scores).await? {
            Transition::Moved => Ok(Finalized::Ended(state, output)),
            Transition::Refused(current) => {
                if current == JobPhase::Cancelled.as_str() {
                    withdraw_outputs(output_dir, job_id);
                    if let Some(store) = output_store {
                        store.withdraw(job_id).await;
                    }
                }
                Ok(Finalized::Lost(current))
            }
            Transition::NotFinalizer(current) => Ok(Finalized::Lost(current)),
            Transition::NoJob => Ok(Finalized::Lost("gone".into())),
        }
    }

    /// For a job submitted with `score`, its scores (or why it has none) as job-hash fields.
    async fn scores(
        &self,
        job_id: &str,
        plan: &Plan,
        predictions: HashMap<u32, Vec<u32>>,
        meteor: &Meteor,
    ) -> Result<Vec<(&'static str, String)>> {
        let references: Option<String> =
            redis::cmd("GET").arg(self.store.keys.references(job_id)).query_async(&mut self.store.con.clone()).await?;
        let Some(references) = references else { return Ok(Vec::new()) };
        crate::metrics::METRICS.scoring_runs.inc();
        let item_of_record = Arc::new(plan.item_of_record.clone());
        let timer = crate::metrics::METRICS.scoring_seconds.start_timer();
        let scored = score_job(job_id, references, item_of_record, Arc::new(predictions), meteor.clone()).await?;
        timer.observe_duration();
        Ok(match scored {
            Ok(scores) => {
                let json = serde_json::to_string(&scores).map_err(|e| CoordinatorError::Internal(e.to_string()))?;
                tracing::info!(%job_id, bleu = scores.bleu, "job scored");
                vec![(f::SCORES, json)]
            }
            Err(why) => {
                tracing::warn!(%job_id, error = %why, "job could not be scored");
                vec![(f::SCORES_ERROR, why)]
            }
        })
    }

    /// How many items of a job have an outcome, and whether all have (a running job whose
    /// every item has one is finalized: after a restart, say).
    pub async fn progress(&self, job_id: &str) -> Result<(u64, bool)> {
        let (done, items): (Option<u64>, Option<u64>) = redis::cmd("HMGET")
            .arg(self.store.keys.job(job_id))
            .arg(f::ITEMS_DONE)
            .arg(f::ITEMS)
            .query_async(&mut self.store.con.clone())
            .await?;
        Ok((done.unwrap_or(0), matches!((done, items), (Some(d), Some(i)) if d >= i)))
    }
}

/// Uploads a finished job's files to the output store; returns where its output is and the
/// job's error. An upload that fails leaves the job's files in the spool, and the job says so:
/// nothing is lost, and the job still ends (its results stay in Redis for StreamResults).
async fn publish(
    store: &OutputStore,
    spool: &Path,
    job_id: &str,
    path: &Path,
    scores: &[(&'static str, String)],
    error: Option<String>,
) -> Result<(String, Option<String>)> {
    if let Some((_, json)) = scores.iter().find(|(field, _)| *field == f::SCORES) {
        write_atomically(&spool.join(format!("{job_id}.scores.json")), json.as_bytes())?;
    }
    match store.publish(spool, job_id).await {
        Ok(url) => Ok((url, error)),
        Err(e) => {
            tracing::error!(%job_id, error = %e, kept = %path.display(), "could not upload a job's output");
            crate::metrics::METRICS.output_uploads_failed.inc();
            let kept = format!(
                "the output could not be uploaded to {} ({e}); it is kept at {} on the coordinator, and \
                 `lorabeam results` reads it",
                store.url(),
                path.display()
            );
            let error = Some(match error {
                Some(failures) => format!("{failures}; {kept}"),
                None => kept,
            });
            Ok((path.display().to_string(), error))
        }
    }
}

/// Most tokens one item may report: far above any beam × eval_len, far below what the job's
/// counters (Redis integers) could overflow on.
const MAX_TOKENS_PER_ITEM: u64 = u32::MAX as u64;

/// Refuses a batch with an impossible count before anything of it reaches Redis.
fn check_outcomes(job_id: &str, outcomes: &[Outcome]) -> Result<()> {
    for outcome in outcomes {
        if let Outcome::Predicted { item, generated_tokens, .. } = outcome {
            if *generated_tokens > MAX_TOKENS_PER_ITEM {
                return Err(CoordinatorError::BadWorkerReport(format!(
                    "job {job_id} item {item}: {generated_tokens} generated tokens is over {MAX_TOKENS_PER_ITEM}; nothing was stored"
                )));
            }
        }
    }
    Ok(())
}

/// Next to a job's output, the records missing from it: `{"id": N, "error": "..."}` per line.
fn write_failures(path: &Path, plan: &Plan, failed: &HashMap<u32, String>) -> Result<()> {
    let mut text = String::new();
    for (record, item) in plan.item_of_record.iter().enumerate() {
        if let Some(reason) = failed.get(item) {
            let line = serde_json::json!({ "id": record, "error": reason });
            text.push_str(&line.to_string());
            text.push('\n');
        }
    }
    write_atomically(path, text.as_bytes())?;
    Ok(())
}

fn poisoned() -> CoordinatorError {
    CoordinatorError::Internal("plan cache lock poisoned".into())
}
