//! What unfinished submissions may hold: one budget of bytes for all SubmitJob streams still
//! being read, and a cap on the streams one client has open. Both are in-process counters
//! (each coordinator replica guards its own memory); a [`Held`] gives its share back when the
//! submission ends, however it ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::{CoordinatorError, Result};
use crate::intake::IntakeLimits;

#[derive(Debug, Default)]
struct State {
    bytes: usize,
    streams: HashMap<String, usize>,
    open: usize,
}

impl State {
    /// Shows the state on the metrics page.
    fn publish(&self) {
        let m = &*crate::metrics::METRICS;
        m.submission_bytes_in_flight.set(self.bytes as i64);
        m.submissions_open.set(self.open as i64);
    }
}

/// The coordinator's open submissions; cheap to clone.
#[derive(Debug, Clone)]
pub struct Submissions {
    max_bytes: usize,
    max_streams_per_client: usize,
    state: Arc<Mutex<State>>,
}

impl Submissions {
    pub fn new(limits: &IntakeLimits) -> Self {
        Self {
            max_bytes: limits.max_submission_bytes_in_flight,
            max_streams_per_client: limits.max_submissions_per_client,
            state: Arc::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a submission of `client`, refused when the client already has its most.
    pub fn open(&self, client: &str) -> Result<Held> {
        let mut state = self.state();
        let open = state.streams.entry(client.to_string()).or_insert(0);
        if *open >= self.max_streams_per_client {
            return Err(CoordinatorError::LimitExceeded {
                limit: "submissions_per_client",
                detail: format!(
                    "{client} already has {open} SubmitJob stream(s) open, this coordinator's limit per client (--max-submissions-per-client)"
                ),
            });
        }
        *open += 1;
        state.open += 1;
        state.publish();
        Ok(Held { owner: self.clone(), client: client.to_string(), bytes: 0 })
    }

    /// Bytes all open submissions hold now.
    #[cfg(test)]
    fn bytes_in_flight(&self) -> usize {
        self.state().bytes
    }
}

/// One open submission's share: its stream slot and the bytes it has read.
#[derive(Debug)]
pub struct Held {
    owner: Submissions,
    client: String,
    bytes: usize,
}

impl Held {
    /// Takes `n` more bytes from the budget, or refuses the submission when they do not fit.
    pub fn reserve(&mut self, n: usize) -> Result<()> {
        let mut state = self.owner.state();
        if state.bytes + n > self.owner.max_bytes {
            return Err(CoordinatorError::LimitExceeded {
                limit: "submission_bytes_in_flight",
                detail: format!(
                    "unfinished submissions hold {} bytes; {n} more would pass this coordinator's budget of {} (--max-submission-bytes-in-flight); try again later",
                    state.bytes, self.owner.max_bytes
                ),
            });
        }
        state.bytes += n;
        self.bytes += n;
        state.publish();
        Ok(())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut state = self.owner.state();
        state.bytes -= self.bytes.min(state.bytes);
        if let Some(open) = state.streams.get_mut(&self.client) {
            *open -= 1;
            if *open == 0 {
                state.streams.remove(&self.client);
            }
        }
        state.open -= 1.min(state.open);
        state.publish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn submissions(max_bytes: usize, streams: usize) -> Submissions {
        let limits = IntakeLimits {
            max_submission_bytes_in_flight: max_bytes,
            max_submissions_per_client: streams,
            ..Default::default()
        };
        Submissions::new(&limits)
    }

    #[test]
    fn streams_and_bytes_are_bounded_and_given_back() {
        let subs = submissions(10, 2);
        let mut a = subs.open("a").expect("first");
        let b = subs.open("a").expect("second");
        let err = subs.open("a").expect_err("third");
        assert!(matches!(err, CoordinatorError::LimitExceeded { limit: "submissions_per_client", .. }), "{err}");
        let mut other = subs.open("b").expect("another client");
        a.reserve(6).expect("fits");
        let err = other.reserve(5).expect_err("over the budget");
        assert!(matches!(err, CoordinatorError::LimitExceeded { limit: "submission_bytes_in_flight", .. }), "{err}");
        other.reserve(4).expect("fits exactly");
        assert_eq!(subs.bytes_in_flight(), 10);
        drop(a);
        drop(b);
        assert_eq!(subs.bytes_in_flight(), 4);
        let _again = subs.open("a").expect("slots given back");
        drop(other);
        assert_eq!(subs.bytes_in_flight(), 0);
    }
}
