//! What a model's workers tell each other about the adapters they load, in Redis, so that a
//! bad adapter fails its job once rather than every worker in turn:
//!
//! - [`Keys::loading_adapters`](crate::queue::Keys::loading_adapters): a hash of adapter name →
//!   [`AdapterLoading`], written before a worker reads an adapter, refreshed while it reads, and
//!   removed when it is done. One that outlives its worker marks an adapter that killed (or hung)
//!   the worker reading it.
//! - [`Keys::bad_adapters`](crate::queue::Keys::bad_adapters): a hash of adapter name →
//!   [`BadAdapter`]: an adapter that failed to load, or that a worker died loading, with why.
//!
//! Both are keyed by the adapter's [fingerprint](AdapterLoading::fingerprint) (its files' sizes and
//! modification times): a changed file is a new adapter, tried again. [`judge`] is the one rule
//! for reading them.

use serde::{Deserialize, Serialize};

/// A worker reading an adapter now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdapterLoading {
    /// The adapter's files as the worker saw them (sizes and modification times).
    pub fingerprint: String,
    /// The worker's consumer name.
    pub worker: String,
    /// Unique to one start of that worker: a restarted worker keeps its name (a pod's hostname
    /// and pid 1), not this.
    pub incarnation: String,
    /// When the worker last said it is still reading (Unix ms).
    pub refreshed_ms: i64,
    /// Silent for longer than this, the worker is gone (its heartbeat's expiry).
    pub stale_after_ms: i64,
}

/// An adapter that must not be loaded again until its files change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadAdapter {
    pub fingerprint: String,
    /// Why, as every job naming it is told.
    pub reason: String,
    /// The worker that found it.
    pub worker: String,
    /// When (Unix ms).
    pub at_ms: i64,
}

/// Who asks [`judge`]: one start of one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incarnation {
    pub worker: String,
    pub id: String,
}

/// What a worker does with an adapter it is about to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Read it.
    Load,
    /// Fail its jobs with this reason: it is marked bad already.
    Bad(String),
    /// A worker died while reading these very files: mark it bad with this reason, and fail.
    KilledItsReader(String),
}

/// The rule for an adapter named `name` whose files now have `fingerprint`: marks of other
/// fingerprints are stale (the files changed) and count for nothing.
pub fn judge(
    name: &str,
    fingerprint: &str,
    bad: Option<&BadAdapter>,
    loading: Option<&AdapterLoading>,
    me: &Incarnation,
    now_ms: i64,
) -> Verdict {
    if let Some(bad) = bad.filter(|b| b.fingerprint == fingerprint) {
        return Verdict::Bad(bad.reason.clone());
    }
    let Some(loading) = loading.filter(|l| l.fingerprint == fingerprint) else { return Verdict::Load };
    let restarted = loading.worker == me.worker && loading.incarnation != me.id;
    let silent_ms = now_ms.saturating_sub(loading.refreshed_ms);
    if !restarted && silent_ms <= loading.stale_after_ms {
        // Another live worker reads it at the same time: so may this one.
        return Verdict::Load;
    }
    let how = if restarted {
        "and was restarted".to_string()
    } else {
        format!("and has been silent for {:.1} s", silent_ms as f64 / 1000.0)
    };
    Verdict::KilledItsReader(format!(
        "adapter `{name}`: worker {} stopped while loading it ({how}): it is taken as bad, on every worker of \
         this model, until its files change",
        loading.worker
    ))
}

/// Reads a mark back; `None` for a field that is not one a worker wrote.
pub fn parse<T: for<'de> Deserialize<'de>>(text: &str) -> Option<T> {
    serde_json::from_str(text).ok()
}

/// A mark as stored.
pub fn to_text<T: Serialize>(mark: &T) -> String {
    serde_json::to_string(mark).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Incarnation {
        Incarnation { worker: "w2".into(), id: "b".into() }
    }

    fn loading(worker: &str, incarnation: &str, refreshed_ms: i64) -> AdapterLoading {
        AdapterLoading {
            fingerprint: "f1".into(),
            worker: worker.into(),
            incarnation: incarnation.into(),
            refreshed_ms,
            stale_after_ms: 3_000,
        }
    }

    #[test]
    fn a_bad_mark_holds_for_its_files_only() {
        let bad = BadAdapter { fingerprint: "f1".into(), reason: "no".into(), worker: "w1".into(), at_ms: 0 };
        assert_eq!(judge("a", "f1", Some(&bad), None, &me(), 10), Verdict::Bad("no".into()));
        assert_eq!(judge("a", "f2", Some(&bad), None, &me(), 10), Verdict::Load);
    }

    #[test]
    fn a_live_reader_elsewhere_is_no_reason_not_to_read() {
        let other = loading("w1", "a", 10_000);
        assert_eq!(judge("a", "f1", None, Some(&other), &me(), 12_000), Verdict::Load);
        assert_eq!(judge("a", "f2", None, Some(&other), &me(), 99_000), Verdict::Load, "other files");
    }

    #[test]
    fn a_reader_gone_silent_or_restarted_marks_the_files_bad() {
        let silent = loading("w1", "a", 10_000);
        let Verdict::KilledItsReader(why) = judge("a", "f1", None, Some(&silent), &me(), 13_500) else {
            panic!("a reader silent past its staleness is dead");
        };
        assert!(why.contains("worker w1 stopped while loading it") && why.contains("3.5 s"), "{why}");
        let my_last_life = loading("w2", "a", 10_000);
        let Verdict::KilledItsReader(why) = judge("a", "f1", None, Some(&my_last_life), &me(), 10_001) else {
            panic!("the same name with another incarnation is this worker restarted");
        };
        assert!(why.contains("was restarted"), "{why}");
        let me_now = loading("w2", "b", 10_000);
        assert_eq!(judge("a", "f1", None, Some(&me_now), &me(), 10_001), Verdict::Load);
    }

    #[test]
    fn marks_round_trip_and_garbage_is_none() {
        let mark = loading("w1", "a", 5);
        assert_eq!(parse::<AdapterLoading>(&to_text(&mark)), Some(mark));
        assert_eq!(parse::<BadAdapter>("{not json"), None);
    }
}
