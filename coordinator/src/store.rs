//! Job state in Redis (layout in `lorabeam_proto::queue`): creating a job and its shards in one
//! transaction, reading status, cancelling, finishing and expiring. Everything a restarted
//! coordinator needs is here, none of it in memory.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lorabeam_core::ModelLimits;
use lorabeam_proto::job_state::{JobPhase, CLAIM_FINALIZATION, RENEW_FINALIZATION, TRANSITION};
use lorabeam_proto::queue::{
    job_fields as f, job_states, model_fields, Keys, ShardMessage, StoredJobSpec, StoredScores,
};
use lorabeam_proto::queue_scripts::CREATE_JOB;
use lorabeam_proto::v1::{JobState, JobStatus};
use redis::aio::ConnectionManager;

use crate::error::{CoordinatorError, Result};
use crate::job_id::JobId;

/// A job ready to be stored: everything the intake worked out.
pub struct NewJob {
    pub job_id: String,
    pub spec: StoredJobSpec,
    pub records: usize,
    pub plan: Vec<u8>,
    pub shards: Vec<ShardMessage>,
    /// Who submitted it (peer address), for the per-client limit of running jobs.
    pub client: String,
    /// W3C trace context of the SubmitJob span, for the job's completion.
    pub job_traceparent: Option<String>,
    /// Per shard, the context of its enqueue span, so workers join the job's trace.
    pub shard_traceparents: Vec<Option<String>>,
    /// For a job to be scored: the JSON of its `E2eReferences`.
    pub references: Option<String>,
}

#[derive(Clone)]
pub struct JobStore {
    pub(crate) con: ConnectionManager,
    pub(crate) keys: Keys,
    retention: Duration,
}

/// How long a job admitted under its client's limit may take to be stored before the admission
/// counts as abandoned (its coordinator died in between).
const ADMISSION_GRACE: Duration = Duration::from_secs(600);
/// A client's jobs set expires this long after its last admission.
const CLIENT_SET_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

/// What a state change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    Moved,
    /// The state machine does not allow it from the job's state, named here.
    Refused(String),
    /// The job is finalizing under another finalizer's token.
    NotFinalizer(String),
    NoJob,
}

/// The per-client limit of running jobs, refused.
pub fn running_limit(client: &str, running: usize) -> CoordinatorError {
    CoordinatorError::LimitExceeded {
        limit: "running_jobs_per_client",
        detail: format!("{client} already has {running} running job(s), this coordinator's limit per client"),
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Maps a stored state name onto the API's enum.
pub fn parse_state(state: &str) -> JobState {
    match JobPhase::parse(state) {
        Some(JobPhase::Queued) => JobState::Queued,
        Some(JobPhase::Running) => JobState::Running,
        Some(JobPhase::Finalizing) => JobState::Finalizing,
        Some(JobPhase::Completed) => JobState::Completed,
        Some(JobPhase::CompletedWithFailures) => JobState::CompletedWithFailures,
        Some(JobPhase::Failed) => JobState::Failed,
        Some(JobPhase::Cancelled) => JobState::Cancelled,
        None => JobState::Unspecified,
    }
}

impl JobStore {
    pub async fn connect(client: redis::Client, keys: Keys, retention: Duration) -> Result<Self> {
        let con = lorabeam_proto::connect::redis_manager(&client, Duration::from_secs(10)).await?;
        Ok(Self { con, keys, retention })
    }

    /// How long a finished job, and a model id no worker serves any more, is kept.
    pub fn retention(&self) -> Duration {
        self.retention
    }

    /// The limits a worker serving `model_id` registered, if one has.
    pub async fn model_limits(&self, model_id: &str) -> Result<Option<ModelLimits>> {
        let (vocab, positions): (Option<usize>, Option<usize>) = redis::cmd("HMGET")
            .arg(self.keys.model(model_id))
            .arg(model_fields::VOCAB_SIZE)
            .arg(model_fields::N_POSITIONS)
            .query_async(&mut self.con.clone())
            .await?;
        Ok(vocab.zip(positions).map(|(vocab_size, n_positions)| ModelLimits { vocab_size, n_positions }))
    }

    /// The job an idempotency key already created, if any.
    pub async fn job_for_key(&self, idempotency_key: &str) -> Result<Option<String>> {
        Ok(redis::cmd("GET").arg(self.keys.idempotency(idempotency_key)).query_async(&mut self.con.clone()).await?)
    }

    /// Stores a job and enqueues its shards in one atomic script ([`CREATE_JOB`]): with an
    /// idempotency key that another job already holds, nothing is written and that job's id
    /// is returned instead, and that job exists whole by then (concurrent submissions with one
    /// key all get the one job). The job is admitted under its client's limit of running jobs
    /// in the same step, so submissions racing each other cannot pass it together.
    pub async fn create(&self, job: &NewJob, max_running_per_client: usize) -> Result<Option<String>> {
        let mut con = self.con.clone();
        lorabeam_proto::queue::ensure_queue(&mut con, &self.keys, &job.spec.model_id).await?;
        let spec = serde_json::to_string(&job.spec).map_err(|e| CoordinatorError::Internal(e.to_string()))?;
        let key = &job.spec.idempotency_key;
        let now = now_ms();
        let mut fields: Vec<(&str, String)> = vec![
            (f::SPEC, spec),
            (f::STATE, job_states::QUEUED.to_string()),
            (f::RECORDS, job.records.to_string()),
            (f::ITEMS, job.shards.iter().map(|s| s.items.len()).sum::<usize>().to_string()),
            (f::SHARDS, job.shards.len().to_string()),
            (f::RECORDS_DONE, "0".into()),
            (f::ITEMS_DONE, "0".into()),
            (f::GENERATED_TOKENS, "0".into()),
            (f::CREATED_MS, now.to_string()),
            (f::CLIENT, job.client.clone()),
        ];
        if let Some(tp) = &job.job_traceparent {
            fields.push((f::TRACEPARENT, tp.clone()));
        }
        let mut call = CREATE_JOB.prepare_invoke();
        let idempotency = if key.is_empty() { self.keys.idempotency("-") } else { self.keys.idempotency(key) };
        call.key(idempotency)
            .key(self.keys.client_jobs(&job.client))
            .key(self.keys.job(&job.job_id))
            .key(self.keys.plan(&job.job_id))
            .key(self.keys.references(&job.job_id))
            .key(self.keys.jobs())
            .key(self.keys.queue(&job.spec.model_id))
            .key(self.keys.entries(&job.job_id))
            .key(self.keys.open_jobs())
            .key(self.keys.job_states())
            .key(self.keys.jobs_indexed());
        call.arg(if key.is_empty() { "0" } else { "1" })
            .arg(&job.job_id)
            .arg(max_running_per_client)
            .arg(now)
            .arg(self.keys.job_prefix())
            .arg(ADMISSION_GRACE.as_millis() as u64)
            .arg(CLIENT_SET_LIFETIME.as_millis() as u64)
            .arg(job.plan.as_slice())
            .arg(if job.references.is_some() { "1" } else { "0" })
            .arg(job.references.as_deref().unwrap_or(""))
            .arg(fields.len());
        for (field, value) in &fields {
            call.arg(*field).arg(value);
        }
        for (k, shard) in job.shards.iter().enumerate() {
            let body = serde_json::to_string(shard).map_err(|e| CoordinatorError::Internal(e.to_string()))?;
            let tp = job.shard_traceparents.get(k).cloned().flatten().unwrap_or_default();
            call.arg(body).arg(tp);
        }
        let (outcome, detail): (String, String) = call.invoke_async(&mut con).await?;
        match outcome.as_str() {
            "created" => Ok(None),
            "existing" => Ok(Some(detail)),
            "full" => Err(running_limit(&job.client, detail.parse().unwrap_or(max_running_per_client))),
            other => Err(CoordinatorError::Internal(format!("job creation answered `{other}`"))),
        }
    }

    /// The job hash, or `JobNotFound`.
    pub async fn job_hash(&self, job_id: &str) -> Result<HashMap<String, String>> {
        let hash: HashMap<String, String> =
            redis::cmd("HGETALL").arg(self.keys.job(job_id)).query_async(&mut self.con.clone()).await?;
        if hash.is_empty() {
            return Err(CoordinatorError::JobNotFound(job_id.to_string()));
        }
        Ok(hash)
    }

    /// The W3C context of the job's SubmitJob span ("" when tracing was off).
    pub async fn job_traceparent(&self, job_id: &str) -> Result<String> {
        let tp: Option<String> = redis::cmd("HGET")
            .arg(self.keys.job(job_id))
            .arg(f::TRACEPARENT)
            .query_async(&mut self.con.clone())
            .await?;
        Ok(tp.unwrap_or_default())
    }

    pub async fn spec(&self, job_id: &str) -> Result<StoredJobSpec> {
        let hash = self.job_hash(job_id).await?;
        parse_spec(job_id, &hash)
    }

    /// How many jobs `client` has running (a quick check before its data is read; the limit
    /// itself is kept by [`create`](Self::create)).
    pub async fn running_jobs_of(&self, client: &str) -> Result<usize> {
        let admitted: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.keys.client_jobs(client))
            .arg(0)
            .arg(-1)
            .query_async(&mut self.con.clone())
            .await?;
        let mut count = 0;
        for job_id in admitted {
            let state: Option<String> =
                redis::cmd("HGET").arg(self.keys.job(&job_id)).arg(f::STATE).query_async(&mut self.con.clone()).await?;
            count += usize::from(state.as_deref().and_then(JobPhase::parse).is_some_and(|p| !p.is_terminal()));
        }
        Ok(count)
    }

    /// Ids of the jobs that have not ended (running or finalizing), oldest first, with their
    /// state: read from the open set, so the cost follows the open jobs, not every job kept.
    pub async fn open_jobs(&self) -> Result<Vec<(String, JobPhase)>> {
        let mut con = self.con.clone();
        let ids: Vec<String> =
            redis::cmd("ZRANGE").arg(self.keys.open_jobs()).arg(0).arg(-1).query_async(&mut con).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for job_id in &ids {
            pipe.hget(self.keys.job(job_id), f::STATE);
        }
        let states: Vec<Option<String>> = pipe.query_async(&mut con).await?;
        let mut open = Vec::new();
        for (job_id, state) in ids.into_iter().zip(states) {
            match state.as_deref().and_then(JobPhase::parse) {
                Some(phase) if !phase.is_terminal() => open.push((job_id, phase)),
                // Its hash is gone (Redis lost it) or it ended: it is not open.
                _ => {
                    let _: () =
                        redis::cmd("ZREM").arg(self.keys.open_jobs()).arg(&job_id).query_async(&mut con).await?;
                }
            }
        }
        Ok(open)
    }

    /// How many retained jobs are in each state.
    pub async fn state_counts(&self) -> Result<HashMap<String, i64>> {
        Ok(redis::cmd("HGETALL").arg(self.keys.job_states()).query_async(&mut self.con.clone()).await?)
    }

    /// Builds the jobs' indexes once, for a Redis that holds jobs from before they existed.
    pub async fn index_jobs(&self) -> Result<()> {
        let indexed: i64 = lorabeam_proto::job_state::INDEX_JOBS
            .key(self.keys.jobs())
            .key(self.keys.open_jobs())
            .key(self.keys.ended_jobs())
            .key(self.keys.job_states())
            .key(self.keys.jobs_indexed())
            .arg(self.keys.job_prefix())
            .arg(now_ms())
            .invoke_async(&mut self.con.clone())
            .await?;
        if indexed >= 0 {
            tracing::info!(jobs = indexed, "indexed the jobs kept in redis by state");
        }
        Ok(())
    }

    /// Up to `size` job ids after `after`, in the jobs set's order (creation time, then id),
    /// and where the next page starts when more follow.
    pub async fn job_page(&self, after: Option<&PageToken>, size: usize) -> Result<(Vec<String>, Option<PageToken>)> {
        let min = after.map_or_else(|| "-inf".to_string(), |t| t.created_ms.to_string());
        let mut page: Vec<(String, i64)> = Vec::new();
        let mut skip = 0;
        loop {
            let batch: Vec<(String, f64)> = redis::cmd("ZRANGEBYSCORE")
                .arg(self.keys.jobs())
                .arg(&min)
                .arg("+inf")
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(skip)
                .arg(size + 1)
                .query_async(&mut self.con.clone())
                .await?;
            let fetched = batch.len();
            skip += fetched;
            for (job_id, score) in batch {
                let created_ms = score as i64;
                let seen = after.is_some_and(|t| created_ms == t.created_ms && job_id.as_str() <= t.job_id.as_str());
                if seen {
                    continue;
                }
                if page.len() == size {
                    let next = match page.last() {
                        Some((id, ms)) => Some(PageToken { created_ms: *ms, job_id: JobId::parse(id)? }),
                        None => None,
                    };
                    return Ok((page.into_iter().map(|(id, _)| id).collect(), next));
                }
                page.push((job_id, created_ms));
            }
            if fetched < size + 1 {
                return Ok((page.into_iter().map(|(id, _)| id).collect(), None));
            }
        }
    }

    /// Cancels a job that has not ended (running, or finalizing: the cancel wins, and the
    /// finalizer withdraws its output): its queued shards are deleted, results that still
    /// arrive are dropped. Returns false when the job had already ended.
    pub async fn cancel(&self, job_id: &str) -> Result<bool> {
        let mut con = self.con.clone();
        let spec = self.spec(job_id).await?;
        let finished = now_ms().to_string();
        let moved = self.transition(job_id, JobPhase::Cancelled, "", &[(f::FINISHED_MS, finished)]).await?;
        if moved != Transition::Moved {
            return Ok(false);
        }
        let entries: Vec<String> =
            redis::cmd("LRANGE").arg(self.keys.entries(job_id)).arg(0).arg(-1).query_async(&mut con).await?;
        let queue = self.keys.queue(&spec.model_id);
        if !entries.is_empty() {
            let mut pipe = redis::pipe();
            for chunk in entries.chunks(1000) {
                pipe.cmd("XDEL").arg(&queue).arg(chunk).ignore();
            }
            let _: () = pipe.query_async(&mut con).await?;
        }
        // Deleted shards no worker read still count as lag in Redis: scale-to-zero needs 0.
        let _: i64 = lorabeam_proto::queue_scripts::RESYNC_LAG
            .key(&queue)
            .arg(lorabeam_proto::queue::WORKER_GROUP)
            .invoke_async(&mut con)
            .await?;
        self.expire(job_id, &spec).await?;
        Ok(true)
    }

    /// Moves a job to `to` through the one script that may change its state (see
    /// `lorabeam_proto::job_state`), setting `fields` in the same step.
    pub async fn transition(
        &self,
        job_id: &str,
        to: JobPhase,
        finalizer: &str,
        fields: &[(&'static str, String)],
    ) -> Result<Transition> {
        let mut call = TRANSITION.prepare_invoke();
        call.key(self.keys.job(job_id))
            .key(self.keys.open_jobs())
            .key(self.keys.ended_jobs())
            .key(self.keys.job_states());
        let expires = now_ms() + self.retention.as_millis().max(1000) as i64;
        call.arg(to.as_str()).arg(finalizer).arg(job_id).arg(expires);
        for (field, value) in fields {
            call.arg(*field).arg(value);
        }
        let (moved, current): (i64, String) = call.invoke_async(&mut self.con.clone()).await?;
        Ok(match moved {
            1 => Transition::Moved,
            -1 => Transition::NotFinalizer(current),
            _ if current.is_empty() => Transition::NoJob,
            _ => Transition::Refused(current),
        })
    }

    /// Takes a job's finalization under `token` for `lease`: a complete running job, or a
    /// finalizing one whose finalizer's lease ran out. Returns whether it was taken.
    pub async fn claim_finalization(&self, job_id: &str, token: &str, lease: Duration) -> Result<bool> {
        let claimed: i64 = CLAIM_FINALIZATION
            .key(self.keys.job(job_id))
            .key(self.keys.job_states())
            .arg(token)
            .arg(now_ms())
            .arg(lease.as_millis() as u64)
            .invoke_async(&mut self.con.clone())
            .await?;
        if claimed == 2 {
            tracing::warn!(%job_id, "took over the finalization of a job whose finalizer's lease ran out");
        }
        Ok(claimed > 0)
    }

    /// Extends a finalizer's lease (a zero lease hands the job back at once); false when the
    /// job is no longer finalizing under `token` (cancelled, or taken over).
    pub async fn renew_finalization(&self, job_id: &str, token: &str, lease: Duration) -> Result<bool> {
        let renewed: i64 = RENEW_FINALIZATION
            .key(self.keys.job(job_id))
            .arg(token)
            .arg(now_ms())
            .arg(lease.as_millis() as u64)
            .invoke_async(&mut self.con.clone())
            .await?;
        Ok(renewed == 1)
    }

    /// Ends a job this finalizer holds (completed, with failures, or failed), with `extra`
    /// job-hash fields (its scores), and starts its retention clock. Refused, and nothing
    /// written, when the job was cancelled meanwhile or another finalizer took it over.
    pub async fn finish(
        &self,
        job_id: &str,
        finalizer: &str,
        state: JobPhase,
        output: Option<&str>,
        error: Option<&str>,
        extra: &[(&'static str, String)],
    ) -> Result<Transition> {
        let spec = self.spec(job_id).await?;
        let mut fields = vec![(f::FINISHED_MS, now_ms().to_string())];
        fields.extend(extra.iter().cloned());
        if let Some(output) = output {
            fields.push((f::OUTPUT, output.to_string()));
        }
        if let Some(error) = error {
            fields.push((f::ERROR, error.to_string()));
        }
        let moved = self.transition(job_id, state, finalizer, &fields).await?;
        if moved == Transition::Moved {
            let _: () = redis::cmd("DEL").arg(self.keys.entries(job_id)).query_async(&mut self.con.clone()).await?;
            self.expire(job_id, &spec).await?;
        }
        Ok(moved)
    }

    async fn expire(&self, job_id: &str, spec: &StoredJobSpec) -> Result<()> {
        let seconds = self.retention.as_secs().max(1) as i64;
        let mut pipe = redis::pipe();
        for key in self.keys.all_of_job(job_id) {
            pipe.expire(key, seconds).ignore();
        }
        if !spec.idempotency_key.is_empty() {
            pipe.expire(self.keys.idempotency(&spec.idempotency_key), seconds).ignore();
        }
        let _: () = pipe.query_async(&mut self.con.clone()).await?;
        Ok(())
    }

    /// Forgets jobs whose retention ran out; returns their ids so their outputs can go too.
    /// Reads only the ended jobs due now, at most a thousand a pass.
    pub async fn sweep_expired(&self) -> Result<Vec<String>> {
        let mut con = self.con.clone();
        let due: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.keys.ended_jobs())
            .arg("-inf")
            .arg(now_ms())
            .arg("LIMIT")
            .arg(0)
            .arg(1000)
            .query_async(&mut con)
            .await?;
        let mut gone = Vec::new();
        for member in due {
            let Some((state, job_id)) = member.split_once(':') else { continue };
            let exists: bool = redis::cmd("EXISTS").arg(self.keys.job(job_id)).query_async(&mut con).await?;
            if exists {
                // Kept longer than its score says (a retention made longer since): not yet.
                continue;
            }
            let _: () = redis::pipe()
                .zrem(self.keys.ended_jobs(), &member)
                .ignore()
                .zrem(self.keys.jobs(), job_id)
                .ignore()
                .hincr(self.keys.job_states(), state, -1)
                .ignore()
                .query_async(&mut con)
                .await?;
            gone.push(job_id.to_string());
        }
        Ok(gone)
    }

    /// Builds the API's view of a job (failed record ids are filled in by the caller).
    pub async fn status(&self, job_id: &str) -> Result<JobStatus> {
        let hash = self.job_hash(job_id).await?;
        let spec = parse_spec(job_id, &hash)?;
        let shards_done: u32 =
            redis::cmd("SCARD").arg(self.keys.shards_done(job_id)).query_async(&mut self.con.clone()).await?;
        let number = |field: &str| -> u64 { hash.get(field).and_then(|v| v.parse().ok()).unwrap_or(0) };
        let created = number(f::CREATED_MS) as i64;
        let finished = number(f::FINISHED_MS) as i64;
        let elapsed_s = ((if finished > 0 { finished } else { now_ms() }) - created).max(1) as f64 / 1000.0;
        let state = hash.get(f::STATE).map(|s| parse_state(s)).unwrap_or(JobState::Unspecified);
        Ok(JobStatus {
            job_id: job_id.to_string(),
            model_id: spec.model_id,
            name: spec.name,
            state: state as i32,
            records: number(f::RECORDS),
            records_done: number(f::RECORDS_DONE),
            shards: number(f::SHARDS) as u32,
            shards_done,
            generated_tokens: number(f::GENERATED_TOKENS),
            tokens_per_s: number(f::GENERATED_TOKENS) as f64 / elapsed_s,
            failed_ids: Vec::new(),
            error: hash.get(f::ERROR).cloned().unwrap_or_default(),
            created_unix_ms: created,
            finished_unix_ms: finished,
            output_path: hash.get(f::OUTPUT).cloned().unwrap_or_default(),
            scores: match hash.get(f::SCORES) {
                Some(json) => {
                    Some(lorabeam_proto::v1::Scores::from(&serde_json::from_str::<StoredScores>(json).map_err(
                        |e| CoordinatorError::CorruptState { job_id: job_id.to_string(), what: format!("scores: {e}") },
                    )?))
                }
                None => None,
            },
            scores_error: hash.get(f::SCORES_ERROR).cloned().unwrap_or_default(),
            // Filled in by the service, which knows the fleet.
            stall: String::new(),
            adapter: spec.adapter,
            data_url: spec.data_url,
            data_etag: spec.data_etag,
            data_bytes: spec.data_bytes,
        })
    }
}

/// Where a ListJobs page goes on: after this job, `<created ms>.<job id>` on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageToken {
    pub created_ms: i64,
    pub job_id: JobId,
}

impl PageToken {
    pub fn parse(token: &str) -> Result<Self> {
        let bad = || CoordinatorError::BadPageToken(lorabeam_core::quote::quote(token));
        let (ms, id) = token.split_once('.').ok_or_else(bad)?;
        Ok(Self { created_ms: ms.parse().map_err(|_| bad())?, job_id: JobId::parse(id).map_err(|_| bad())? })
    }

    pub fn encode(&self) -> String {
        format!("{}.{}", self.created_ms, self.job_id)
    }
}

pub fn parse_spec(job_id: &str, hash: &HashMap<String, String>) -> Result<StoredJobSpec> {
    let corrupt = |what: String| CoordinatorError::CorruptState { job_id: job_id.to_string(), what };
    let text = hash.get(f::SPEC).ok_or_else(|| corrupt("no spec".into()))?;
    serde_json::from_str(text).map_err(|e| corrupt(format!("spec: {e}")))
}

impl JobStore {
    /// Whether a job exists and takes results (queued or running).
    pub async fn is_running(&self, job_id: &str) -> Result<bool> {
        let state: Option<String> =
            redis::cmd("HGET").arg(self.keys.job(job_id)).arg(f::STATE).query_async(&mut self.con.clone()).await?;
        Ok(JobPhase::name_takes_results(state.as_deref()))
    }
}
