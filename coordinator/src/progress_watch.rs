//! How long each open job has gone without a new result, as one coordinator sees it at its
//! maintenance passes: the longest such wait is a gauge, so an alert can name a job that
//! stalls while the rest of the fleet moves (the fleet-wide alert sees only total progress).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Each open job's items done when last seen, and since when it has had that count.
#[derive(Debug, Default)]
pub struct ProgressWatch {
    seen: HashMap<String, (u64, Instant)>,
}

impl ProgressWatch {
    /// Takes in the open jobs' items done at `now` (jobs not listed are forgotten); returns the
    /// longest any of them has gone without progress (zero without open jobs). A job first
    /// seen now counts from now: a restarted coordinator does not report its whole age.
    pub fn observe(&mut self, now: Instant, jobs: &[(String, u64)]) -> Duration {
        let mut next = HashMap::with_capacity(jobs.len());
        let mut longest = Duration::ZERO;
        for (job_id, done) in jobs {
            let since = match self.seen.get(job_id) {
                Some((before, since)) if before == done => *since,
                _ => now,
            };
            longest = longest.max(now.saturating_duration_since(since));
            next.insert(job_id.clone(), (*done, since));
        }
        self.seen = next;
        longest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_without_progress_ages_and_progress_resets_it() {
        let mut watch = ProgressWatch::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let jobs = |a: u64, b: u64| vec![("a".to_string(), a), ("b".to_string(), b)];
        assert_eq!(watch.observe(at(0), &jobs(0, 0)), Duration::ZERO);
        assert_eq!(watch.observe(at(10), &jobs(5, 0)), Duration::from_secs(10), "b has not moved");
        assert_eq!(watch.observe(at(30), &jobs(9, 0)), Duration::from_secs(30));
        assert_eq!(watch.observe(at(40), &jobs(9, 1)), Duration::from_secs(10), "a last moved at 30");
        assert_eq!(watch.observe(at(50), &[]), Duration::ZERO, "no open job");
        assert_eq!(watch.observe(at(60), &jobs(9, 1)), Duration::ZERO, "forgotten jobs count afresh");
    }
}
