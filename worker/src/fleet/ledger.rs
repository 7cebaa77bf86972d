//! The reporter's ledger: every shard the worker holds until the coordinator confirms it and
//! Redis acks it, each item's outcome, and what to send or send again. Pure: the reporter does
//! the I/O and asks the ledger what to do.
//!
//! The rules:
//! - An item's first outcome is recorded and sent; a second one for the same item (a retry
//!   that also finished) is neither recorded nor sent. Outcomes of shards not held (dropped,
//!   lost, or already confirmed and acked) are ignored.
//! - `ShardFinished` goes right after a shard's last outcome.
//! - A confirmation counts only for a shard with every outcome in; from then on only the ack
//!   in Redis is left (retried until it succeeds).
//! - After a reconnect, every held shard's recorded outcomes are sent again, and its
//!   `ShardFinished` when it has every outcome; the coordinator ignores what it already has.

use std::collections::{BTreeMap, HashSet};

use lorabeam_proto::telemetry::traceparent;
use lorabeam_proto::v1::{ItemFailed, ItemResult, Report, ShardFinished};
use tracing::Span;

use super::queue::Claimed;

/// A held shard.
pub struct Held {
    pub entry_id: String,
    pub job_id: String,
    pub shard_id: String,
    items: Vec<u32>,
    outcomes: Vec<Option<Report>>,
    remaining: usize,
    /// The shard-run span: it ends when the shard is forgotten.
    pub span: Span,
    /// Its W3C context, sent with every report of the shard.
    traceparent: String,
    /// The coordinator holds every result; only the ack in Redis is left.
    confirmed: bool,
}

impl Held {
    fn new(claimed: Claimed, span: Span) -> Self {
        let items: Vec<u32> = claimed.shard.items.iter().map(|i| i.item).collect();
        Self {
            entry_id: claimed.entry_id,
            job_id: claimed.shard.job_id,
            shard_id: claimed.shard.shard_id,
            outcomes: vec![None; items.len()],
            remaining: items.len(),
            items,
            traceparent: traceparent(&span).unwrap_or_default(),
            span,
            confirmed: false,
        }
    }

    fn finished(&self) -> Report {
        Report::Finished(ShardFinished {
            job_id: self.job_id.clone(),
            shard_id: self.shard_id.clone(),
            traceparent: self.traceparent.clone(),
            entry_id: self.entry_id.clone(),
        })
    }

    fn replay(&self) -> impl Iterator<Item = Report> + '_ {
        let done = (self.remaining == 0).then(|| self.finished());
        self.outcomes.iter().flatten().cloned().chain(done)
    }
}

/// What became of one item.
pub enum Outcome {
    Predicted { predict: Vec<u32>, generated_tokens: u64 },
    Failed { reason: String },
}

#[derive(Default)]
pub struct Ledger {
    shards: BTreeMap<u32, Held>,
}

impl Ledger {
    pub fn hold(&mut self, seq: u32, claimed: Claimed, span: Span) {
        self.shards.insert(seq, Held::new(claimed, span));
    }

    pub fn get(&self, seq: u32) -> Option<&Held> {
        self.shards.get(&seq)
    }

    /// Records item `index` of shard `seq`; returns the reports to send now (none when the
    /// outcome is not new).
    pub fn record(&mut self, seq: u32, index: usize, outcome: Outcome) -> Vec<Report> {
        let Some(shard) = self.shards.get_mut(&seq) else { return vec![] };
        let (Some(&item), Some(None)) = (shard.items.get(index), shard.outcomes.get(index)) else { return vec![] };
        let (job_id, shard_id, traceparent, entry_id) =
            (shard.job_id.clone(), shard.shard_id.clone(), shard.traceparent.clone(), shard.entry_id.clone());
        let report = match outcome {
            Outcome::Predicted { predict, generated_tokens } => {
                Report::Result(ItemResult { job_id, shard_id, item, predict, generated_tokens, traceparent, entry_id })
            }
            Outcome::Failed { reason } => {
                Report::Failed(ItemFailed { job_id, shard_id, item, reason, traceparent, entry_id })
            }
        };
        shard.outcomes[index] = Some(report.clone());
        shard.remaining -= 1;
        let mut reports = vec![report];
        if shard.remaining == 0 {
            reports.push(shard.finished());
        }
        reports
    }

    /// The coordinator confirmed a shard: the seq to ack, when the shard has every outcome.
    pub fn confirm(&mut self, job_id: &str, shard_id: &str) -> Option<u32> {
        let (&seq, shard) = self.shards.iter_mut().find(|(_, s)| s.job_id == job_id && s.shard_id == shard_id)?;
        if shard.remaining > 0 {
            return None;
        }
        shard.confirmed = true;
        Some(seq)
    }

    /// Everything to send again on a new stream.
    pub fn replay(&self) -> Vec<Report> {
        self.shards.values().flat_map(Held::replay).collect()
    }

    /// Confirmed shards whose ack has not succeeded yet.
    pub fn unacked(&self) -> Vec<u32> {
        self.shards.iter().filter(|(_, s)| s.confirmed).map(|(&seq, _)| seq).collect()
    }

    pub fn of_job(&self, job_id: &str) -> HashSet<u32> {
        self.shards.iter().filter(|(_, s)| s.job_id == job_id).map(|(&seq, _)| seq).collect()
    }

    /// The held shards whose entries are among `entries`.
    pub fn with_entries(&self, entries: &[String]) -> HashSet<u32> {
        self.shards.iter().filter(|(_, s)| entries.contains(&s.entry_id)).map(|(&seq, _)| seq).collect()
    }

    /// The queue entries of `seqs`, or of every held shard.
    pub fn entries(&self, seqs: Option<&HashSet<u32>>) -> Vec<String> {
        let wanted = |seq: &u32| seqs.is_none_or(|seqs| seqs.contains(seq));
        self.shards.iter().filter(|(seq, _)| wanted(seq)).map(|(_, s)| s.entry_id.clone()).collect()
    }

    pub fn jobs(&self) -> HashSet<String> {
        self.shards.values().map(|s| s.job_id.clone()).collect()
    }

    pub fn forget(&mut self, seq: u32) -> Option<Held> {
        self.shards.remove(&seq)
    }

    pub fn len(&self) -> usize {
        self.shards.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use lorabeam_core::DecodeParams;
    use lorabeam_proto::queue::{ShardItem, ShardMessage};

    use super::*;

    fn claimed(job: &str, shard: &str, items: &[u32]) -> Claimed {
        let items = items.iter().map(|&item| ShardItem { item, context: vec![1], first_step_context: None });
        Claimed {
            entry_id: format!("1-{shard}"),
            shard: ShardMessage {
                job_id: job.into(),
                shard_id: shard.into(),
                params: DecodeParams::default(),
                items: items.collect(),
                adapter: String::new(),
            },
            traceparent: None,
            reclaimed: false,
            deliveries: 1,
        }
    }

    fn predicted(token: u32) -> Outcome {
        Outcome::Predicted { predict: vec![token], generated_tokens: 1 }
    }

    /// The kinds of reports, with the job item for outcomes.
    fn kinds(reports: &[Report]) -> Vec<String> {
        reports
            .iter()
            .map(|r| match r {
                Report::Result(r) => format!("result {}", r.item),
                Report::Failed(f) => format!("failed {}", f.item),
                Report::Finished(f) => format!("finished {}", f.shard_id),
            })
            .collect()
    }

    #[test]
    fn each_outcome_is_sent_once_and_the_shard_finishes_after_its_last() {
        let mut ledger = Ledger::default();
        ledger.hold(1, claimed("j", "0", &[10, 11]), Span::none());
        assert_eq!(kinds(&ledger.record(1, 1, predicted(5))), ["result 11"]);
        assert!(ledger.record(1, 1, predicted(6)).is_empty(), "a second outcome for item 11 is not sent");
        let reason = "engine error".to_string();
        assert_eq!(kinds(&ledger.record(1, 0, Outcome::Failed { reason })), ["failed 10", "finished 0"]);
        let replay = ledger.replay();
        assert_eq!(kinds(&replay), ["failed 10", "result 11", "finished 0"], "replayed in item order");
        match &replay[1] {
            Report::Result(r) => assert_eq!(r.predict, vec![5], "the first outcome is the one kept"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn outcomes_of_shards_not_held_or_items_out_of_range_are_ignored() {
        let mut ledger = Ledger::default();
        ledger.hold(1, claimed("j", "0", &[10]), Span::none());
        assert!(ledger.record(2, 0, predicted(1)).is_empty());
        assert!(ledger.record(1, 1, predicted(1)).is_empty());
        ledger.forget(1);
        assert!(ledger.record(1, 0, predicted(1)).is_empty(), "a forgotten shard takes nothing");
    }

    #[test]
    fn a_confirmation_counts_only_once_every_outcome_is_in() {
        let mut ledger = Ledger::default();
        ledger.hold(1, claimed("j", "0", &[10, 11]), Span::none());
        ledger.record(1, 0, predicted(1));
        assert_eq!(ledger.confirm("j", "0"), None, "item 11 has no outcome yet");
        assert!(ledger.unacked().is_empty());
        ledger.record(1, 1, predicted(2));
        assert_eq!(ledger.confirm("j", "1"), None, "another shard");
        assert_eq!(ledger.confirm("k", "0"), None, "another job");
        assert_eq!(ledger.confirm("j", "0"), Some(1));
        assert_eq!(ledger.unacked(), vec![1], "confirmed, ack pending until forgotten");
        ledger.forget(1);
        assert!(ledger.unacked().is_empty() && ledger.is_empty());
    }

    #[test]
    fn a_reconnect_resends_recorded_outcomes_and_finished_only_for_complete_shards() {
        let mut ledger = Ledger::default();
        ledger.hold(1, claimed("j", "0", &[10, 11]), Span::none());
        ledger.hold(2, claimed("j", "1", &[12]), Span::none());
        ledger.hold(3, claimed("k", "0", &[0]), Span::none());
        ledger.record(1, 1, predicted(1));
        ledger.record(2, 0, predicted(2));
        assert_eq!(kinds(&ledger.replay()), ["result 11", "result 12", "finished 1"]);
        ledger.confirm("j", "1");
        assert_eq!(kinds(&ledger.replay()), ["result 11", "result 12", "finished 1"], "unacked shards resend too");
    }

    #[test]
    fn shards_are_found_by_job_and_by_queue_entry() {
        let mut ledger = Ledger::default();
        ledger.hold(1, claimed("j", "0", &[1]), Span::none());
        ledger.hold(2, claimed("j", "1", &[2]), Span::none());
        ledger.hold(3, claimed("k", "2", &[3]), Span::none());
        assert_eq!(ledger.of_job("j"), HashSet::from([1, 2]));
        assert_eq!(ledger.with_entries(&["1-2".to_string(), "9-9".to_string()]), HashSet::from([3]));
        assert_eq!(ledger.entries(Some(&HashSet::from([2]))), vec!["1-1".to_string()]);
        assert_eq!(ledger.entries(None).len(), 3);
        assert_eq!(ledger.jobs(), HashSet::from(["j".to_string(), "k".to_string()]));
    }
}
