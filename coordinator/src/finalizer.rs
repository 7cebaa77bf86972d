//! Finalization, off the result path and once per job across every coordinator: a job whose
//! last outcome is stored is handed to a task here (the worker's report stream does not wait
//! for it), which claims the job's finalization in Redis under this coordinator's token and a
//! lease, writes the output and scores it, and ends the job if it is still its own. At most
//! `--max-finalizing` run at once per coordinator. The lease is renewed while the work runs; a
//! cancel (or a takeover) stops the work at the next renewal, and a cancelled job's files are
//! withdrawn. A coordinator that dies mid-way is replaced by any other once its lease runs
//! out (the maintenance pass finds the job).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lorabeam_proto::job_state::JobPhase;
use lorabeam_proto::telemetry::{parent_from_traceparent, set_error};
use tokio::sync::Semaphore;
use tracing::{info_span, Instrument};

use crate::metrics::METRICS;
use crate::results::{withdraw_outputs, Finalized};
use crate::server::Coordinator;

/// How long a finalizer holds a job without renewing: after this a dead one is replaced.
const LEASE: Duration = Duration::from_secs(30);
/// How often a running finalization renews its lease (and so notices a cancel).
const RENEW_EVERY: Duration = Duration::from_secs(1);

/// This coordinator's finalizations.
#[derive(Clone)]
pub struct Finalizer {
    /// Unique per coordinator process: the lease holder's name in the job hash.
    token: Arc<str>,
    permits: Arc<Semaphore>,
    /// Jobs handed to a task and not yet done with, so repeated requests start one task.
    requested: Arc<Mutex<HashSet<String>>>,
}

impl Finalizer {
    pub fn new(max_running: usize) -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let token = format!("{}-{}-{}", host.trim(), std::process::id(), uuid::Uuid::new_v4().simple());
        Self { token: token.into(), permits: Arc::new(Semaphore::new(max_running.max(1))), requested: Arc::default() }
    }

    fn take(&self, job_id: &str) -> bool {
        self.requested.lock().map(|mut r| r.insert(job_id.to_string())).unwrap_or(false)
    }

    fn done(&self, job_id: &str) {
        if let Ok(mut requested) = self.requested.lock() {
            requested.remove(job_id);
        }
    }
}

impl Coordinator {
    /// Finalizes `job_id` in a task of its own if it is complete and no one else finalizes it;
    /// returns at once.
    pub fn request_finalization(&self, job_id: &str) {
        if !self.finalizer.take(job_id) {
            return;
        }
        let (this, job_id) = (self.clone(), job_id.to_string());
        tokio::spawn(async move {
            this.finalize(&job_id).await;
            this.finalizer.done(&job_id);
        });
    }

    async fn finalize(&self, job_id: &str) {
        let Ok(_permit) = self.finalizer.permits.acquire().await else { return };
        let token = self.finalizer.token.clone();
        match self.store.claim_finalization(job_id, &token, LEASE).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => return tracing::warn!(%job_id, error = %e, "could not claim a job's finalization; will retry"),
        }
        self.events.notify(job_id);
        let span = info_span!("complete_job", job_id);
        if let Ok(tp) = self.store.job_traceparent(job_id).await {
            parent_from_traceparent(&span, &tp);
        }
        let work = self
            .results
            .finalize(job_id, &self.output_dir, &self.meteor, self.output_store.as_deref(), &token)
            .instrument(span.clone());
        let outcome = tokio::select! {
            outcome = work => Some(outcome),
            () = self.hold_finalization(job_id, &token) => None,
        };
        match outcome {
            Some(Ok(Finalized::Ended(state, path))) => {
                METRICS.jobs_finalized.inc();
                tracing::info!(%job_id, %state, output = %path, "job completed");
                self.results.forget(job_id);
                self.leases.forget_job(job_id);
                if let Ok(hash) = self.store.job_hash(job_id).await {
                    crate::traces::record_job_span(job_id, &hash);
                }
            }
            Some(Ok(Finalized::Lost(_))) | None => self.finalization_lost(job_id).await,
            Some(Err(e)) => {
                set_error(&span, e.to_string());
                tracing::error!(%job_id, error = %e, "could not finalize the job; will retry");
                // Hands the job back at once, so the next maintenance pass tries again.
                if let Err(e) = self.store.renew_finalization(job_id, &token, Duration::ZERO).await {
                    tracing::warn!(%job_id, error = %e, "could not hand the finalization back; its lease runs out");
                }
            }
        }
        self.events.notify(job_id);
    }

    /// The job left this finalizer's hands: a cancelled job's files are withdrawn.
    async fn finalization_lost(&self, job_id: &str) {
        METRICS.finalizations_lost.inc();
        let state = self
            .store
            .job_hash(job_id)
            .await
            .ok()
            .and_then(|h| h.get(lorabeam_proto::queue::job_fields::STATE).cloned());
        let phase = state.as_deref().and_then(JobPhase::parse);
        if phase == Some(JobPhase::Cancelled) {
            withdraw_outputs(&self.output_dir, job_id);
            if let Some(store) = &self.output_store {
                store.withdraw(job_id).await;
            }
        }
        let state = state.unwrap_or_else(|| "gone".into());
        tracing::info!(%job_id, %state, "finalization stopped: the job is no longer this coordinator's to end");
    }

    /// Renews the finalization lease until it is lost (the job was cancelled or taken over).
    async fn hold_finalization(&self, job_id: &str, token: &str) {
        loop {
            tokio::time::sleep(RENEW_EVERY).await;
            match self.store.renew_finalization(job_id, token, LEASE).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => tracing::warn!(%job_id, error = %e, "could not renew a finalization lease; retrying"),
            }
        }
    }
}
