//! The reporter: streams each result to the coordinator as soon as it is final, acks a shard in
//! Redis once the coordinator confirms it, renews leases, and resends everything unconfirmed
//! after a reconnect.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::time::Duration;

use lorabeam_proto::v1::{Report, ShardConfirmed, WorkerReport, WorkerServiceClient};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use lorabeam_proto::telemetry::{parent_from_traceparent, set_error};
use tracing::{info_span, Instrument, Span};

use super::config::Fleet;
use super::error::FleetError;
use super::ledger::{Ledger, Outcome};
use super::messages::{FeedMessage, FeedOutput};
use super::metrics::METRICS;
use super::queue::Claimed;

/// The stream to the coordinator, while it is up.
struct Link {
    reports: mpsc::Sender<WorkerReport>,
    confirmations: Streaming<ShardConfirmed>,
}

async fn open_link(fleet: &Fleet) -> Result<Link, FleetError> {
    let config = &fleet.config;
    let channel = lorabeam_proto::connect::channel(&config.coordinator, &config.tls, OPEN_TIMEOUT).await?;
    let (reports, rx) = mpsc::channel(4096);
    let mut client = WorkerServiceClient::with_interceptor(channel, config.token.clone())
        .max_decoding_message_size(config.max_message_bytes);
    // The coordinator takes reports only for shards whose lease this consumer holds.
    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    let consumer = tonic::metadata::BinaryMetadataValue::from_bytes(config.consumer.as_bytes());
    request.metadata_mut().insert_bin(lorabeam_proto::queue::CONSUMER_METADATA, consumer);
    let secret = tonic::metadata::BinaryMetadataValue::from_bytes(fleet.secret.as_bytes());
    request.metadata_mut().insert_bin(lorabeam_proto::queue::CONSUMER_SECRET_METADATA, secret);
    // A coordinator that accepts the connection but does not answer (still starting, or
    // half gone) must not hold the reconnect up: it is tried again after the backoff.
    let opened = tokio::time::timeout(OPEN_TIMEOUT, client.report(request)).await.map_err(|_| {
        tonic::Status::deadline_exceeded(format!("the coordinator did not open the stream within {OPEN_TIMEOUT:?}"))
    })?;
    Ok(Link { reports, confirmations: opened?.into_inner() })
}

/// How long opening the coordinator stream (connect, then the Report call) may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait between reconnects: a restarted coordinator is found within about this.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

async fn next_confirmation(link: &mut Option<Link>) -> Result<Option<ShardConfirmed>, tonic::Status> {
    match link {
        Some(link) => link.confirmations.message().await,
        None => {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok(None)
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

pub struct Reporter {
    fleet: Fleet,
    inflight: Ledger,
    link: Option<Link>,
    failures: u32,
    /// The engine thread's inbox: shards to run, and shards no longer run.
    engine: Sender<FeedMessage>,
}

impl Reporter {
    pub fn new(fleet: Fleet, engine: Sender<FeedMessage>) -> Self {
        Self { fleet, inflight: Ledger::default(), link: None, failures: 0, engine }
    }

    /// Runs until `shutdown` fires and every shard is confirmed or released, or until the
    /// grace period after it runs out.
    pub async fn run(
        mut self,
        mut outputs: mpsc::UnboundedReceiver<FeedOutput>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), FleetError> {
        let mut renew = tokio::time::interval(self.fleet.config.lease / 3);
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            if self.link.is_none() {
                self.reconnect().await;
            }
            if deadline.is_some() && self.inflight.is_empty() {
                tracing::info!("every shard is confirmed; worker stopping");
                return Ok(());
            }
            tokio::select! {
                output = outputs.recv() => match output {
                    Some(output) => self.on_output(output).await,
                    None => return Err(FleetError::EngineStopped),
                },
                confirmation = next_confirmation(&mut self.link) => match confirmation {
                    Ok(Some(confirmed)) => self.on_confirmed(confirmed).await,
                    Ok(None) if self.link.is_none() => {}
                    Ok(None) => self.lose_link("the coordinator closed the stream"),
                    Err(status) => self.lose_link(&status.to_string()),
                },
                _ = renew.tick() => self.renew().await,
                _ = shutdown.changed(), if deadline.is_none() => {
                    let grace = self.fleet.config.grace;
                    tracing::info!(shards = self.inflight.len(), grace_s = grace.as_secs(), "stopping: finishing in-flight shards");
                    deadline = Some(tokio::time::Instant::now() + grace);
                }
                _ = sleep_until(deadline) => {
                    let entries = self.inflight.entries(None);
                    tracing::warn!(shards = entries.len(), "grace period over: releasing unfinished shards");
                    self.fleet.queue.release(&entries).await?;
                    return Ok(());
                }
            }
        }
    }

    async fn reconnect(&mut self) {
        if self.failures > 0 {
            let delay = Duration::from_millis(100 * 2u64.pow(self.failures.min(6))).min(MAX_BACKOFF);
            tokio::time::sleep(delay).await;
        }
        match open_link(&self.fleet).await {
            Ok(link) => {
                if self.failures > 0 {
                    tracing::info!("reconnected to the coordinator");
                }
                self.failures = 0;
                self.link = Some(link);
                // The coordinator refuses reports of shards whose lease went to another
                // worker (and ends the stream): forget those before resending the rest.
                self.renew_leases().await;
                for report in self.inflight.replay() {
                    self.send(report).await;
                }
            }
            Err(e) => {
                self.failures += 1;
                if self.failures == 1 || self.failures.is_multiple_of(20) {
                    tracing::warn!(error = %e, attempts = self.failures, "cannot reach the coordinator; retrying");
                }
            }
        }
    }

    fn lose_link(&mut self, why: &str) {
        METRICS.errors.with_label_values(&["coordinator_link"]).inc();
        tracing::warn!(%why, "lost the coordinator stream; will resend unconfirmed results");
        self.link = None;
        self.failures = self.failures.max(1);
    }

    async fn send(&mut self, report: Report) {
        let Some(link) = &self.link else { return };
        if link.reports.send(WorkerReport { report: Some(report) }).await.is_err() {
            self.lose_link("the report stream closed");
        }
    }

    async fn on_output(&mut self, output: FeedOutput) {
        let (seq, index, outcome) = match output {
            FeedOutput::Claimed { seq, claimed, span, decode } => {
                return self.on_claimed(seq, *claimed, span, decode).await
            }
            FeedOutput::Stopped => return,
            FeedOutput::Predicted { seq, index, predict, generated_tokens } => {
                (seq, index, Outcome::Predicted { predict, generated_tokens })
            }
            FeedOutput::Failed { seq, index, reason } => (seq, index, Outcome::Failed { reason }),
        };
        let reports = self.inflight.record(seq, index, outcome);
        for report in reports {
            match &report {
                Report::Result(result) => {
                    METRICS.records_done.inc();
                    METRICS.generated_tokens.inc_by(result.generated_tokens);
                }
                Report::Failed(failed) => {
                    tracing::warn!(job_id = %failed.job_id, item = failed.item, reason = %failed.reason, "item failed");
                    if let Some(shard) = self.inflight.get(seq) {
                        set_error(&shard.span, format!("item {} failed: {}", failed.item, failed.reason));
                    }
                    METRICS.records_failed.inc();
                }
                Report::Finished(_) => {}
            }
            self.send(report).await;
        }
    }

    /// A claimed shard: held from now on and handed to the engine, unless its job ended.
    async fn on_claimed(&mut self, seq: u32, claimed: Claimed, span: Span, decode: bool) {
        let items = claimed.shard.items.len();
        let job_id = claimed.shard.job_id.clone();
        match self.fleet.queue.job_running(&job_id).instrument(span.clone()).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(%job_id, "skipping a shard of an ended job");
                if let Err(e) = self.fleet.queue.ack(std::slice::from_ref(&claimed.entry_id)).await {
                    tracing::warn!(error = %e, "could not ack a shard of an ended job");
                }
                if decode {
                    self.fleet.feed.items_left(items);
                }
                return self.fleet.shards_done(1);
            }
            Err(e) => tracing::warn!(error = %e, "could not check the job's state; running the shard anyway"),
        }
        let shard = decode.then(|| Box::new(claimed.shard.clone()));
        self.inflight.hold(seq, claimed, span.clone());
        METRICS.shards_in_flight.set(self.inflight.len() as i64);
        if let Some(shard) = shard {
            if self.engine.send(FeedMessage::Shard { seq, shard, span }).is_err() {
                tracing::warn!("the engine thread is gone; the shard is released at shutdown");
            }
        }
    }

    /// Forgets shards the worker no longer runs, and has the engine drop their queued items.
    fn forget(&mut self, seqs: HashSet<u32>) {
        for &seq in &seqs {
            self.inflight.forget(seq);
        }
        METRICS.shards_in_flight.set(self.inflight.len() as i64);
        self.fleet.shards_done(seqs.len());
        let _ = self.engine.send(FeedMessage::Drop { seqs });
    }

    async fn on_confirmed(&mut self, confirmed: ShardConfirmed) {
        let Some(seq) = self.inflight.confirm(&confirmed.job_id, &confirmed.shard_id) else { return };
        self.ack(seq, &confirmed.traceparent).await;
        if !confirmed.job_alive {
            if let Err(e) = self.drop_job(&confirmed.job_id).await {
                tracing::warn!(error = %e, "could not drop an ended job's shards; will retry");
            }
        }
    }

    /// Acks a confirmed shard in Redis and forgets it. A failed ack is retried on the next
    /// lease tick; until then the lease is renewed, so the shard does not run again.
    async fn ack(&mut self, seq: u32, parent: &str) {
        let Some(shard) = self.inflight.get(seq) else { return };
        let span = info_span!("ack_shard", job_id = %shard.job_id, shard_id = %shard.shard_id);
        parent_from_traceparent(&span, parent);
        match self.fleet.queue.ack(std::slice::from_ref(&shard.entry_id)).instrument(span.clone()).await {
            Ok(()) => {
                self.inflight.forget(seq);
                self.fleet.shards_done(1);
                METRICS.shards_done.inc();
                METRICS.shards_in_flight.set(self.inflight.len() as i64);
            }
            Err(e) => {
                set_error(&span, e.to_string());
                METRICS.errors.with_label_values(&["redis"]).inc();
                tracing::warn!(error = %e, "could not ack a confirmed shard; will retry");
            }
        }
    }

    /// Forgets a job that ended (cancelled, completed, expired): its queued items are skipped
    /// and its shards acked.
    async fn drop_job(&mut self, job_id: &str) -> Result<(), FleetError> {
        let seqs = self.inflight.of_job(job_id);
        let entries = self.inflight.entries(Some(&seqs));
        self.fleet.queue.ack(&entries).await?;
        self.forget(seqs);
        Ok(())
    }

    /// Renews every lease this worker still holds, and forgets the shards whose lease expired
    /// and went to another worker: the coordinator would refuse their reports, and the other
    /// worker runs them.
    async fn renew_leases(&mut self) {
        let entries = self.inflight.entries(None);
        let lost = match self.fleet.queue.renew(&entries).await {
            Ok(lost) => lost,
            Err(e) => {
                METRICS.errors.with_label_values(&["redis"]).inc();
                tracing::warn!(error = %e, "could not renew leases");
                return;
            }
        };
        if lost.is_empty() {
            return;
        }
        tracing::warn!(lost = lost.len(), "leases expired and were taken over; dropping those shards");
        let seqs = self.inflight.with_entries(&lost);
        self.forget(seqs);
    }

    /// Renews every lease and drops jobs that ended meanwhile. Redis trouble is logged and
    /// retried on the next tick: a lease lost meanwhile only means a shard may run twice.
    async fn renew(&mut self) {
        METRICS.items_waiting.set(self.fleet.feed.waiting_items.load(Ordering::SeqCst) as i64);
        for seq in self.inflight.unacked() {
            self.ack(seq, "").await;
        }
        self.renew_leases().await;
        for job_id in self.inflight.jobs() {
            match self.fleet.queue.job_running(&job_id).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::info!(%job_id, "job ended; dropping its shards");
                    if let Err(e) = self.drop_job(&job_id).await {
                        tracing::warn!(error = %e, "could not drop an ended job's shards");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not check a job's state"),
            }
        }
    }
}
