//! `lorabeam.v1.WorkerService`: the long-lived stream each worker reports results on.
//!
//! Reports are applied in the order they arrive, in batches of whatever is already buffered,
//! so one Redis round trip stores many results. A shard is confirmed only after every result
//! before its `ShardFinished` is stored; the worker acks the shard in Redis only then, so a
//! coordinator that dies in between loses nothing: the worker resends.
//!
//! A worker is trusted only for the shards it holds: every report names its shard's queue
//! entry, which must hold that shard, and whose lease the store scripts check is the stream's
//! consumer's in the same atomic step as the write (see `leases`).

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use lorabeam_proto::v1::{Report, ShardConfirmed, ShardFinished, WorkerReport, WorkerService};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use lorabeam_core::quote::truncate;
use lorabeam_proto::telemetry::{int, parent_from_traceparent, set_error, traceparent};
use tracing::{info_span, Instrument};

use crate::error::{stream_error, CoordinatorError, Result};
use crate::job_id::JobId;
use crate::leases::{BatchLeases, Consumer, JobFacts, LeasedShard, Marked, ShardLease};
use crate::metrics::rpc_error;
use crate::results::{Outcome, Stored};
use crate::server::Coordinator;
use crate::sharding::is_shard_id;

/// Most reports applied in one batch.
const MAX_BATCH: usize = 2048;

type Confirmations = mpsc::Sender<std::result::Result<ShardConfirmed, Status>>;

impl Coordinator {
    async fn follow_reports(self, consumer: Consumer, mut inbound: Streaming<WorkerReport>, tx: Confirmations) {
        let _open = self.drain.worker_stream();
        loop {
            let next = tokio::select! {
                next = inbound.next() => next,
                // Only between batches: what arrived is stored and confirmed; the worker
                // resends the rest to the next coordinator.
                _ = self.drain.begun() => {
                    let _ = tx.send(Err(crate::shutdown::Drain::status())).await;
                    // The goodbye ends the response; the request stream stays open until the
                    // worker, having read it, closes its side. Dropping it here instead made
                    // HTTP/2 reset the worker's sending half (RST_STREAM NO_ERROR, as h2 does
                    // for a request body the server stopped reading), so a worker that sent its
                    // next result before reading the goodbye lost the stream as "the report
                    // stream closed" and never learned why. What it sends meanwhile is not
                    // stored or confirmed; it resends that to the successor. The grace bounds
                    // this wait (see `Coordinator::serve`).
                    while let Some(Ok(_)) = inbound.next().await {}
                    return;
                }
            };
            let mut batch = match next {
                Some(Ok(report)) => vec![report],
                Some(Err(status)) => return refuse_stream(status, &tx).await,
                None => return,
            };
            // What ends the stream after this batch: its end, or the error that broke it.
            let mut ended = None;
            while batch.len() < MAX_BATCH {
                match tokio::time::timeout(Duration::ZERO, inbound.next()).await {
                    Ok(Some(Ok(report))) => batch.push(report),
                    Ok(end) => {
                        ended = Some(end.and_then(|r| r.err()));
                        break;
                    }
                    Err(_) => break,
                }
            }
            if let Err(e) = self.apply_reports(&consumer, batch, &tx).await {
                tracing::warn!(error = %e, consumer = %consumer.as_str(), "worker reports refused; the stream ends with the error");
                let _ = tx.send(Err(rpc_error(e))).await;
                return;
            }
            match ended {
                Some(Some(status)) => return refuse_stream(status, &tx).await,
                Some(None) => return,
                None => {}
            }
        }
    }

    async fn apply_reports(&self, consumer: &Consumer, batch: Vec<WorkerReport>, tx: &Confirmations) -> Result<()> {
        // Outcomes of consecutive reports of one job go to Redis together.
        let mut pending: Option<Pending> = None;
        for report in batch.into_iter().filter_map(|r| r.report) {
            let (job_id, shard_id, entry_id, outcome, tp) = match report {
                Report::Result(r) => (
                    r.job_id,
                    r.shard_id,
                    r.entry_id,
                    Outcome::Predicted { item: r.item, predict: r.predict, generated_tokens: r.generated_tokens },
                    r.traceparent,
                ),
                Report::Failed(r) => {
                    // Stored, then shown in every status and on terminals: kept bounded.
                    let reason = truncate(&r.reason, self.intake.max_reason_bytes);
                    (r.job_id, r.shard_id, r.entry_id, Outcome::Failed { item: r.item, reason }, r.traceparent)
                }
                Report::Finished(finished) => {
                    if let Some(batch) = pending.take() {
                        self.store_outcomes(consumer, batch).await?;
                    }
                    if tx.send(Ok(self.confirm(consumer, finished).await?)).await.is_err() {
                        return Ok(());
                    }
                    continue;
                }
            };
            let Some(leased) = self.leased(&job_id, &shard_id, &entry_id).await? else { continue };
            check_outcome(&leased, &outcome)?;
            match &mut pending {
                Some(batch) if batch.job_id == leased.job_id => batch.push(entry_id, &leased.shard.shard_id, outcome),
                _ => {
                    let next = Pending {
                        job_id: leased.job_id,
                        facts: leased.facts,
                        entries: vec![entry_id],
                        shards: vec![leased.shard.shard_id.clone()],
                        outcomes: vec![outcome],
                        traceparent: tp,
                    };
                    if let Some(previous) = pending.replace(next) {
                        self.store_outcomes(consumer, previous).await?;
                    }
                }
            }
        }
        if let Some(batch) = pending {
            self.store_outcomes(consumer, batch).await?;
        }
        Ok(())
    }

    /// The shard a report names, checked against what its queue entry holds; `None` when the
    /// job has ended (the report is dropped, or its shard confirmed as belonging to no job).
    /// Whether the lease is still the reporter's is checked by the store scripts.
    async fn leased(&self, job_id: &str, shard_id: &str, entry_id: &str) -> Result<Option<Leased>> {
        let job_id = report_job_id(job_id)?;
        if !is_shard_id(shard_id) {
            let shown = lorabeam_core::quote::quote(shard_id);
            return Err(CoordinatorError::BadWorkerReport(format!("{shown} is not a shard id")));
        }
        let Some(facts) = self.leases.job(job_id.as_str()).await? else { return Ok(None) };
        let Some(shard) = self.leases.shard(&facts, entry_id).await? else {
            // A cancelled job's entries are deleted; a running job's only once finished.
            if !self.store.is_running(job_id.as_str()).await? {
                return Ok(None);
            }
            return Err(CoordinatorError::NotLeaseHolder(format!(
                "job {job_id} shard {shard_id}: queue entry {entry_id} is gone (another worker finished the shard) or never was; nothing of the batch was stored"
            )));
        };
        if shard.job_id != job_id.as_str() || shard.shard_id != shard_id {
            return Err(CoordinatorError::BadWorkerReport(format!(
                "queue entry {entry_id} holds shard {} of job {}, not shard {shard_id} of job {job_id}",
                shard.shard_id, shard.job_id
            )));
        }
        Ok(Some(Leased { job_id, facts, shard }))
    }

    /// Every result before a ShardFinished is stored: mark the shard done and confirm it.
    async fn confirm(&self, consumer: &Consumer, finished: ShardFinished) -> Result<ShardConfirmed> {
        let leased = self.leased(&finished.job_id, &finished.shard_id, &finished.entry_id).await?;
        let Some(Leased { job_id, facts, shard }) = leased else {
            // The job is gone: the worker acks and drops the shard; nothing is written.
            return Ok(ShardConfirmed {
                job_id: finished.job_id,
                shard_id: finished.shard_id,
                job_alive: false,
                traceparent: String::new(),
            });
        };
        let span = info_span!("confirm_shard", %job_id, shard_id = %finished.shard_id);
        parent_from_traceparent(&span, &finished.traceparent);
        let lease = ShardLease { queue: &facts.queue, consumer: consumer.as_str(), entry_id: &finished.entry_id };
        let marked = self
            .leases
            .mark_shard_done(job_id.as_str(), &lease, &shard)
            .instrument(span.clone())
            .await
            .inspect_err(|e| set_error(&span, e.to_string()))?;
        let job_alive = match marked {
            Marked::Done { running } => running,
            Marked::JobGone => false,
            Marked::NotLeased => return Err(not_leased(&job_id, &shard.shard_id, &lease)),
            Marked::Unfinished(item) => {
                return Err(CoordinatorError::BadWorkerReport(format!(
                    "job {job_id} shard {}: finished, but item {item} has no outcome; the shard stays open",
                    shard.shard_id
                )))
            }
        };
        self.leases.forget_entry(&facts, &finished.entry_id);
        crate::metrics::METRICS.shards_done.inc();
        self.events.notify(job_id.as_str());
        Ok(ShardConfirmed {
            job_id: job_id.into_string(),
            shard_id: finished.shard_id,
            job_alive,
            traceparent: traceparent(&span).unwrap_or_default(),
        })
    }

    async fn store_outcomes(&self, consumer: &Consumer, batch: Pending) -> Result<()> {
        let span = info_span!("store_results", job_id = %batch.job_id, results = int(batch.outcomes.len()));
        parent_from_traceparent(&span, &batch.traceparent);
        let job_id = batch.job_id.as_str();
        let leases = BatchLeases { queue: &batch.facts.queue, consumer: consumer.as_str(), entries: &batch.entries };
        let stored = self.results.store(job_id, &leases, &batch.outcomes).instrument(span.clone()).await;
        match stored.inspect_err(|e| set_error(&span, e.to_string()))? {
            Stored::JobGone => tracing::debug!(%job_id, dropped = batch.outcomes.len(), "results for an ended job"),
            Stored::NotLeased(k) => {
                let entry_id = batch.entries.get(k).map(String::as_str).unwrap_or("?");
                let shard_id = batch.shards.get(k).map(String::as_str).unwrap_or("?");
                let lease = ShardLease { queue: &batch.facts.queue, consumer: consumer.as_str(), entry_id };
                return Err(not_leased(&batch.job_id, shard_id, &lease));
            }
            Stored::Accepted { added, complete } => {
                if added > 0 && complete {
                    self.request_finalization(job_id);
                }
                self.events.notify(job_id);
            }
        }
        Ok(())
    }
}

/// Consecutive outcomes of one job, stored in one Redis call.
struct Pending {
    job_id: JobId,
    facts: Arc<JobFacts>,
    /// The queue entries (leases) of the outcomes' shards, each once, and those shards' ids.
    entries: Vec<String>,
    shards: Vec<String>,
    outcomes: Vec<Outcome>,
    /// The context of the first report: its shard-run span on the worker.
    traceparent: String,
}

impl Pending {
    fn push(&mut self, entry_id: String, shard_id: &str, outcome: Outcome) {
        if !self.entries.contains(&entry_id) {
            self.entries.push(entry_id);
            self.shards.push(shard_id.to_string());
        }
        self.outcomes.push(outcome);
    }
}

/// A report's shard, as its queue entry holds it.
struct Leased {
    job_id: JobId,
    facts: Arc<JobFacts>,
    shard: Arc<LeasedShard>,
}

/// An outcome is of one of the shard's items, and a prediction one the job could produce.
fn check_outcome(leased: &Leased, outcome: &Outcome) -> Result<()> {
    let (item, predict) = match outcome {
        Outcome::Predicted { item, predict, .. } => (*item, Some(predict)),
        Outcome::Failed { item, .. } => (*item, None),
    };
    let (job_id, shard_id) = (&leased.job_id, &leased.shard.shard_id);
    if !leased.shard.holds(item) {
        return Err(CoordinatorError::BadWorkerReport(format!(
            "job {job_id} shard {shard_id} has no item {item}; nothing of the batch was stored"
        )));
    }
    if let Some(predict) = predict {
        leased.shard.check_prediction(predict, leased.facts.vocab_size).map_err(|why| {
            CoordinatorError::BadWorkerReport(format!(
                "job {job_id} item {item}: the prediction has {why}; nothing of the batch was stored"
            ))
        })?;
    }
    Ok(())
}

fn not_leased(job_id: &JobId, shard: &str, lease: &ShardLease<'_>) -> CoordinatorError {
    CoordinatorError::NotLeaseHolder(format!(
        "job {job_id} shard {shard}: queue entry {} is not leased to consumer {} (its lease expired and another worker holds it, or it never was this worker's); nothing of the batch was stored",
        lease.entry_id,
        lorabeam_core::quote::quote(lease.consumer)
    ))
}

/// A report stream broken by what the worker sent (a message over the size limit, a frame that
/// does not decode): the worker learns it from the stream's end, with the error's status.
async fn refuse_stream(status: Status, tx: &Confirmations) {
    let err = stream_error(status);
    tracing::warn!(error = %err, "worker reports refused; ending the stream with the error");
    let _ = tx.send(Err(rpc_error(err))).await;
}

/// A report's job id, checked before it names a Redis key.
fn report_job_id(id: &str) -> Result<JobId> {
    JobId::parse(id).map_err(|e| CoordinatorError::BadWorkerReport(e.to_string()))
}

type ConfirmationStream = Pin<Box<dyn Stream<Item = std::result::Result<ShardConfirmed, Status>> + Send>>;

#[tonic::async_trait]
impl WorkerService for Coordinator {
    type ReportStream = ConfirmationStream;

    async fn report(
        &self,
        request: Request<Streaming<WorkerReport>>,
    ) -> std::result::Result<Response<Self::ReportStream>, Status> {
        let consumer = Consumer::from_metadata(request.metadata()).map_err(rpc_error)?;
        self.leases.prove(&consumer, request.metadata()).await.map_err(rpc_error)?;
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(self.clone().follow_reports(consumer, request.into_inner(), tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
