//! `lorabeam.v1.JobService`: what clients call.

use std::pin::Pin;
use std::time::Duration;

use lorabeam_core::ModelLimits;
use lorabeam_proto::telemetry::{int, traceparent};
use lorabeam_proto::v1::{
    CancelJobRequest, GetJobRequest, JobEvent, JobService, JobSpec, JobState, JobStatus, ListJobsRequest,
    ListJobsResponse, ListWorkersRequest, ListWorkersResponse, Prediction, StreamResultsRequest, SubmitJobRequest,
    SubmitJobResponse, WatchJobRequest,
};
use lorabeam_proto::{job_state_is_final, job_state_name};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{info_span, Instrument, Span};

use crate::error::{CoordinatorError, Result};
use crate::intake::{plan_job, read_submission};
use crate::job_id::JobId;
use crate::metrics::rpc_error;
use crate::object_data::{read_data_object, SubmittedData};
use crate::server::Coordinator;
use crate::store::PageToken;
use crate::traces::{record_job_span, rpc_result, rpc_span, submit_span};

/// How often followers re-read Redis without a notification from this process: a slow
/// fallback for changes made elsewhere (another replica, a restart). Local changes wake them
/// at once through [`JobEvents`](crate::events::JobEvents).
const REFRESH: Duration = Duration::from_secs(2);
/// Bursts of results are coalesced into one WatchJob event this long.
const COALESCE: Duration = Duration::from_millis(100);
/// Jobs in a ListJobs answer when the client does not say, and the most it may ask for.
const DEFAULT_PAGE_SIZE: usize = 100;
const MAX_PAGE_SIZE: usize = 1000;
/// Records fetched per round of StreamResults.
const RESULT_WINDOW: usize = 512;

type BoxStream<T> = Pin<Box<dyn Stream<Item = std::result::Result<T, Status>> + Send>>;

impl Coordinator {
    pub async fn submit(&self, stream: Streaming<SubmitJobRequest>, client: String) -> Result<SubmitJobResponse> {
        // Freed when the submission ends, however it ends.
        let mut held = self.submissions.open(&client)?;
        let running = self.store.running_jobs_of(&client).await?;
        if running >= self.intake.max_running_jobs_per_client {
            return Err(crate::store::running_limit(&client, running));
        }
        let (spec, streamed) = read_submission(stream, self.intake, &mut held).await?;
        let submitted = if spec.data_url.is_empty() {
            SubmittedData { bytes: streamed, object: None }
        } else {
            read_data_object(&spec.data_url, &self.intake, &mut held).await?
        };
        if !spec.idempotency_key.is_empty() {
            if let Some(job_id) = self.store.job_for_key(&spec.idempotency_key).await? {
                return self.existing(job_id, &spec, &submitted).await;
            }
        }
        let SubmittedData { bytes: data, object } = submitted;
        self.fleet.check_model(&spec.model_id).await?;
        let model = self.store.model_limits(&spec.model_id).await?.unwrap_or(ModelLimits::GPT2);
        let intake = self.intake;
        // Shards are sized to spread the job over the workers live now (unless sized by flag).
        let live_workers = self.fleet.live(&spec.model_id).await?.len();
        let job_id = JobId::fresh().into_string();
        let (mut job, spec, data) = tokio::task::spawn_blocking(move || {
            plan_job(job_id, &spec, &data, model, intake, live_workers).map(|job| (job, spec, data))
        })
        .await
        .map_err(|e| CoordinatorError::Internal(format!("intake task: {e}")))??;
        if let Some(object) = &object {
            job.spec.data_url = spec.data_url.clone();
            (job.spec.data_etag, job.spec.data_bytes) = (object.etag.clone(), object.size);
        }
        let span = Span::current();
        span.record("job_id", job.job_id.as_str());
        span.record("records", int(job.records));
        span.record("shards", int(job.shards.len()));
        job.job_traceparent = traceparent(&span);
        job.client = client;
        let queue = self.store.keys.queue(&job.spec.model_id);
        job.shard_traceparents = job
            .shards
            .iter()
            .map(|shard| {
                let items = int(shard.items.len());
                traceparent(&info_span!(
                    "enqueue_shard",
                    otel.kind = "producer",
                    messaging.system = "redis",
                    messaging.destination.name = %queue,
                    job_id = %job.job_id,
                    shard_id = %shard.shard_id,
                    items
                ))
            })
            .collect();
        if let Some(existing) = self.store.create(&job, self.intake.max_running_jobs_per_client).await? {
            return self.existing(existing, &spec, &SubmittedData { bytes: data, object }).await;
        }
        crate::metrics::METRICS.jobs_submitted.inc();
        tracing::info!(job_id = %job.job_id, records = job.records, shards = job.shards.len(), model_id = %job.spec.model_id, adapter = %job.spec.adapter, "job queued");
        Ok(SubmitJobResponse {
            job_id: job.job_id.clone(),
            records: job.records as u64,
            distinct_items: job.shards.iter().map(|s| s.items.len() as u64).sum(),
            shards: job.shards.len() as u32,
            existing: false,
        })
    }

    /// The job an idempotency key made, when the resubmission asks for its work.
    async fn existing(&self, job_id: String, spec: &JobSpec, data: &SubmittedData) -> Result<SubmitJobResponse> {
        let stored = self.store.spec(&job_id).await?;
        crate::idempotency::check_same_work(&job_id, &stored, spec, data, self.intake.default_shard_size)?;
        let status = self.status(&job_id).await?;
        let plan = self.results.plan(&job_id).await?;
        Ok(SubmitJobResponse {
            job_id,
            records: status.records,
            distinct_items: plan.records_of_item.len() as u64,
            shards: status.shards,
            existing: true,
        })
    }

    pub async fn status(&self, job_id: &str) -> Result<JobStatus> {
        let mut status = self.store.status(job_id).await?;
        status.failed_ids = self.results.failed_records(job_id).await?;
        self.add_stall(&mut status).await;
        Ok(status)
    }

    /// Says why a running job is not moving, when the coordinator can tell. Best effort: a
    /// status is still worth sending without it.
    async fn add_stall(&self, status: &mut JobStatus) {
        if status.state != JobState::Running as i32 && status.state != JobState::Queued as i32 {
            return;
        }
        match self.stall(&status.job_id, &status.model_id).await {
            Ok(stall) => status.stall = stall,
            Err(e) => tracing::debug!(job_id = %status.job_id, error = %e, "could not work out the job's stall"),
        }
    }

    /// Streams a job's status on every change until it is final.
    fn watch(&self, job_id: JobId) -> BoxStream<JobEvent> {
        let (tx, rx) = mpsc::channel(16);
        let this = self.clone();
        tokio::spawn(async move {
            let job_id = job_id.as_str();
            let mut changes = this.events.subscribe(job_id);
            let mut last: Option<JobStatus> = None;
            loop {
                let status = match this.status(job_id).await {
                    Ok(status) => status,
                    Err(e) => {
                        let _ = tx.send(Err(rpc_error(e))).await;
                        return;
                    }
                };
                let done = job_state_is_final(status.state);
                if last.as_ref() != Some(&status) {
                    last = Some(status.clone());
                    if tx.send(Ok(JobEvent { status: Some(status) })).await.is_err() {
                        return;
                    }
                }
                if this.drain.is_draining() {
                    let _ = tx.send(Err(crate::shutdown::Drain::status())).await;
                    return;
                }
                if done || !wait_for_change(&mut changes, &tx, COALESCE).await {
                    return;
                }
            }
        });
        Box::pin(ReceiverStream::new(rx))
    }

    /// Streams predictions in id order from `offset`, waiting for each while the job runs.
    /// Records whose item failed are skipped (they are listed in the job's status).
    fn stream_results(&self, job_id: JobId, offset: usize) -> BoxStream<Prediction> {
        let (tx, rx) = mpsc::channel(RESULT_WINDOW);
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.send_results(job_id.as_str(), offset, &tx).await {
                let _ = tx.send(Err(rpc_error(e))).await;
            }
        });
        Box::pin(ReceiverStream::new(rx))
    }

    async fn send_results(
        &self,
        job_id: &str,
        mut next: usize,
        tx: &mpsc::Sender<std::result::Result<Prediction, Status>>,
    ) -> Result<()> {
        let mut changes = self.events.subscribe(job_id);
        let records = self.results.plan(job_id).await?.item_of_record.len();
        while next < records {
            let window = self.results.predictions(job_id, next..(next + RESULT_WINDOW).min(records)).await?;
            let mut sent = 0;
            for predict in window.into_iter().map_while(|p| p) {
                let prediction = Prediction { id: (next + sent) as u64, predict };
                if tx.send(Ok(prediction)).await.is_err() {
                    return Ok(());
                }
                sent += 1;
            }
            next += sent;
            if sent > 0 || next >= records {
                continue;
            }
            // Record `next` has no prediction: failed, still running, or never coming.
            let plan = self.results.plan(job_id).await?;
            let failures = self.results.failures(job_id).await?;
            if failures.contains_key(&plan.item_of_record[next]) {
                next += 1;
                continue;
            }
            let status = self.store.status(job_id).await?;
            if job_state_is_final(status.state) {
                // Nothing more will come (cancelled, failed): the rest of what is stored, then why
                // some are missing.
                let missing = self.send_stored_rest(job_id, next, records, tx).await?;
                return Err(CoordinatorError::JobEndedShort {
                    job_id: job_id.into(),
                    state: job_state_name(status.state),
                    missing,
                    records,
                });
            }
            if self.drain.is_draining() {
                return Err(CoordinatorError::ShuttingDown);
            }
            if !wait_for_change(&mut changes, tx, Duration::ZERO).await {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// Waits for a change of the job (or the fallback refresh), then `coalesce` more; false as
/// soon as the client has gone away, so a cancelled follower stops at once instead of reading
/// Redis until the job ends.
async fn wait_for_change<T>(changes: &mut watch::Receiver<u64>, tx: &mpsc::Sender<T>, coalesce: Duration) -> bool {
    let wait = async {
        let _ = tokio::time::timeout(REFRESH, changes.changed()).await;
        tokio::time::sleep(coalesce).await;
    };
    tokio::select! {
        _ = tx.closed() => false,
        _ = wait => !tx.is_closed(),
    }
}

impl Coordinator {
    /// Sends every stored prediction of records `next..records` of an ended job; returns how
    /// many records have neither a prediction nor a failure.
    async fn send_stored_rest(
        &self,
        job_id: &str,
        mut next: usize,
        records: usize,
        tx: &mpsc::Sender<std::result::Result<Prediction, Status>>,
    ) -> Result<usize> {
        let plan = self.results.plan(job_id).await?;
        let failures = self.results.failures(job_id).await?;
        let mut missing = 0;
        while next < records {
            let end = (next + RESULT_WINDOW).min(records);
            for (id, predict) in (next..end).zip(self.results.predictions(job_id, next..end).await?) {
                match predict {
                    Some(predict) => {
                        if tx.send(Ok(Prediction { id: id as u64, predict })).await.is_err() {
                            return Ok(missing);
                        }
                    }
                    None => missing += usize::from(!failures.contains_key(&plan.item_of_record[id])),
                }
            }
            next = end;
        }
        Ok(missing)
    }
}

#[tonic::async_trait]
impl JobService for Coordinator {
    async fn submit_job(
        &self,
        request: Request<Streaming<SubmitJobRequest>>,
    ) -> std::result::Result<Response<SubmitJobResponse>, Status> {
        let span = submit_span(&request);
        let client = request.remote_addr().map(|a| a.ip().to_string()).unwrap_or_else(|| "unknown".into());
        let submitted = self.submit(request.into_inner(), client).instrument(span.clone()).await;
        Ok(Response::new(rpc_result(&span, submitted)?))
    }

    type WatchJobStream = BoxStream<JobEvent>;

    async fn watch_job(
        &self,
        request: Request<WatchJobRequest>,
    ) -> std::result::Result<Response<Self::WatchJobStream>, Status> {
        let span = rpc_span("WatchJob", &request);
        let job_id = rpc_result(&span, JobId::parse(&request.into_inner().job_id))?;
        rpc_result(&span, self.store.job_hash(job_id.as_str()).instrument(span.clone()).await)?;
        Ok(Response::new(self.watch(job_id)))
    }

    async fn get_job(&self, request: Request<GetJobRequest>) -> std::result::Result<Response<JobStatus>, Status> {
        let span = rpc_span("GetJob", &request);
        let job_id = rpc_result(&span, JobId::parse(&request.into_inner().job_id))?;
        Ok(Response::new(rpc_result(&span, self.status(job_id.as_str()).instrument(span.clone()).await)?))
    }

    async fn list_jobs(
        &self,
        request: Request<ListJobsRequest>,
    ) -> std::result::Result<Response<ListJobsResponse>, Status> {
        let span = rpc_span("ListJobs", &request);
        let request = request.into_inner();
        let page = async {
            let after = match request.page_token.as_str() {
                "" => None,
                token => Some(PageToken::parse(token)?),
            };
            let size = match request.page_size as usize {
                0 => DEFAULT_PAGE_SIZE,
                n => n.min(MAX_PAGE_SIZE),
            };
            let (ids, next) = self.store.job_page(after.as_ref(), size).await?;
            let mut jobs = Vec::new();
            for job_id in ids {
                match self.store.status(&job_id).await {
                    Ok(mut status) => {
                        self.add_stall(&mut status).await;
                        jobs.push(status)
                    }
                    Err(CoordinatorError::JobNotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(ListJobsResponse { jobs, next_page_token: next.map(|t| t.encode()).unwrap_or_default() })
        };
        Ok(Response::new(rpc_result(&span, page.instrument(span.clone()).await)?))
    }

    async fn cancel_job(&self, request: Request<CancelJobRequest>) -> std::result::Result<Response<JobStatus>, Status> {
        let span = rpc_span("CancelJob", &request);
        let job_id = rpc_result(&span, JobId::parse(&request.into_inner().job_id))?;
        rpc_result(&span, self.cancel(job_id).instrument(span.clone()).await).map(Response::new)
    }

    async fn list_workers(
        &self,
        request: Request<ListWorkersRequest>,
    ) -> std::result::Result<Response<ListWorkersResponse>, Status> {
        let span = rpc_span("ListWorkers", &request);
        Ok(Response::new(rpc_result(&span, self.fleet.list().instrument(span.clone()).await)?))
    }

    type StreamResultsStream = BoxStream<Prediction>;

    async fn stream_results(
        &self,
        request: Request<StreamResultsRequest>,
    ) -> std::result::Result<Response<Self::StreamResultsStream>, Status> {
        let span = rpc_span("StreamResults", &request);
        let request = request.into_inner();
        let job_id = rpc_result(&span, JobId::parse(&request.job_id))?;
        rpc_result(&span, self.store.job_hash(job_id.as_str()).instrument(span.clone()).await)?;
        Ok(Response::new(Coordinator::stream_results(self, job_id, request.offset as usize)))
    }
}

impl Coordinator {
    async fn cancel(&self, job_id: JobId) -> Result<JobStatus> {
        let job_id = job_id.as_str();
        if !self.store.cancel(job_id).await? {
            let status = self.store.status(job_id).await?;
            return Err(CoordinatorError::JobNotRunning {
                job_id: job_id.to_string(),
                state: job_state_name(status.state),
                action: "cancel",
            });
        }
        tracing::info!(%job_id, "job cancelled");
        self.leases.forget_job(job_id);
        if let Ok(hash) = self.store.job_hash(job_id).await {
            record_job_span(job_id, &hash);
        }
        self.events.notify(job_id);
        self.status(job_id).await
    }
}
