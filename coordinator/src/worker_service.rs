//! `lorabeam.v1.WorkerService`: the long-lived stream each worker reports results on.
//!
//! Reports are applied in the order they arrive, in batches of whatever is already buffered,
//! so one Redis round trip stores many results. A shard is confirmed only after every result
//! before its `ShardFinished` is stored; the worker acks the shard in Redis only then, so a
//! coordinator that dies in between loses nothing: the worker resends.

use std::pin::Pin;
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
use crate::metrics::rpc_error;
use crate::results::{Outcome, Stored};
use crate::server::Coordinator;
use crate::sharding::is_shard_id;

/// Most reports applied in one batch.
const MAX_BATCH: usize = 2048;

type Confirmations = mpsc::Sender<std::result::Result<ShardConfirmed, Status>>;

impl Coordinator {
    async fn follow_reports(self, mut inbound: Streaming<WorkerReport>, tx: Confirmations) {
        loop {
            let mut batch = match inbound.next().await {
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
            if let Err(e) = self.apply_reports(batch, &tx).await {
                tracing::warn!(error = %e, "could not apply worker reports; the worker will resend them");
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

    async fn apply_reports(&self, batch: Vec<WorkerReport>, tx: &Confirmations) -> Result<()> {
        // Outcomes of consecutive reports of one job go to Redis together.
        let mut pending: Option<Pending> = None;
        for report in batch.into_iter().filter_map(|r| r.report) {
            let (job_id, outcome, tp) = match report {
                Report::Result(r) => (
                    report_job_id(&r.job_id)?,
                    Outcome::Predicted { item: r.item, predict: r.predict, generated_tokens: r.generated_tokens },
                    r.traceparent,
                ),
                Report::Failed(r) => {
                    // Stored, then shown in every status and on terminals: kept bounded.
                    let reason = truncate(&r.reason, self.intake.max_reason_bytes);
                    (report_job_id(&r.job_id)?, Outcome::Failed { item: r.item, reason }, r.traceparent)
                }
                Report::Finished(finished) => {
                    if let Some(batch) = pending.take() {
                        self.store_outcomes(batch).await?;
                    }
                    if tx.send(Ok(self.confirm(finished).await?)).await.is_err() {
                        return Ok(());
                    }
                    continue;
                }
            };
            match &mut pending {
                Some(batch) if batch.job_id == job_id => batch.outcomes.push(outcome),
                _ => {
                    let next = Pending { job_id, outcomes: vec![outcome], traceparent: tp };
                    if let Some(previous) = pending.replace(next) {
                        self.store_outcomes(previous).await?;
                    }
                }
            }
        }
        if let Some(batch) = pending {
            self.store_outcomes(batch).await?;
        }
        Ok(())
    }

    /// Every result before a ShardFinished is stored: mark the shard done and confirm it.
    async fn confirm(&self, finished: ShardFinished) -> Result<ShardConfirmed> {
        let job_id = report_job_id(&finished.job_id)?;
        if !is_shard_id(&finished.shard_id) {
            let shown = lorabeam_core::quote::quote(&finished.shard_id);
            return Err(CoordinatorError::BadWorkerReport(format!("{shown} is not a shard id")));
        }
        let span = info_span!("confirm_shard", %job_id, shard_id = %finished.shard_id);
        parent_from_traceparent(&span, &finished.traceparent);
        let job_alive = self
            .store
            .mark_shard_done(job_id.as_str(), &finished.shard_id)
            .instrument(span.clone())
            .await
            .inspect_err(|e| set_error(&span, e.to_string()))?;
        crate::metrics::METRICS.shards_done.inc();
        self.events.notify(job_id.as_str());
        Ok(ShardConfirmed {
            job_id: job_id.into_string(),
            shard_id: finished.shard_id,
            job_alive,
            traceparent: traceparent(&span).unwrap_or_default(),
        })
    }

    async fn store_outcomes(&self, batch: Pending) -> Result<()> {
        let span = info_span!("store_results", job_id = %batch.job_id, results = int(batch.outcomes.len()));
        parent_from_traceparent(&span, &batch.traceparent);
        let job_id = batch.job_id.as_str();
        let stored = self.results.store(job_id, &batch.outcomes).instrument(span.clone()).await;
        match stored.inspect_err(|e| set_error(&span, e.to_string()))? {
            Stored::JobGone => tracing::debug!(%job_id, dropped = batch.outcomes.len(), "results for an ended job"),
            Stored::Accepted { added, complete } => {
                if added > 0 && complete {
                    self.finalize(job_id).await;
                }
                self.events.notify(job_id);
            }
        }
        Ok(())
    }

    /// Writes a complete job's output. A failure leaves the job running; the maintenance loop
    /// tries again.
    pub async fn finalize(&self, job_id: &str) {
        let span = info_span!("complete_job", job_id);
        if let Ok(tp) = self.store.job_traceparent(job_id).await {
            parent_from_traceparent(&span, &tp);
        }
        match self.results.finalize(job_id, &self.output_dir, &self.meteor).instrument(span.clone()).await {
            Ok(path) => {
                tracing::info!(%job_id, output = %path.display(), "job completed");
                self.results.forget(job_id);
                if let Ok(hash) = self.store.job_hash(job_id).await {
                    crate::traces::record_job_span(job_id, &hash);
                }
            }
            Err(e) => {
                set_error(&span, e.to_string());
                tracing::error!(%job_id, error = %e, "could not write the job's output; will retry");
            }
        }
        self.events.notify(job_id);
    }
}

/// Consecutive outcomes of one job, stored in one Redis call.
struct Pending {
    job_id: JobId,
    outcomes: Vec<Outcome>,
    /// The context of the first report: its shard-run span on the worker.
    traceparent: String,
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
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(self.clone().follow_reports(request.into_inner(), tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
