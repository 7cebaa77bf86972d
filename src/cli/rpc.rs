//! Calls to the coordinator as a user sees them: a failed call said as `NOT_FOUND: message`,
//! and the calls that follow a job (watch, results) riding out a coordinator restart with
//! backoff, as workers do.

use std::time::{Duration, Instant};

use tonic::{Code, Status};

use super::client::shown;

/// A gRPC code as the protocol names it: `NOT_FOUND`, `UNAVAILABLE`.
pub fn code_name(code: Code) -> String {
    let camel = format!("{code:?}");
    let mut name = String::with_capacity(camel.len() + 4);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

/// A failed call in one line: its code's name, the coordinator's message (controls escaped) and
/// the transport's cause, each said once.
pub fn status_text(status: &Status) -> String {
    let mut messages = vec![format!("{}: {}", code_name(status.code()), shown(status.message()))];
    let mut cause = std::error::Error::source(status);
    while let Some(next) = cause {
        messages.push(next.to_string());
        cause = next.source();
    }
    lorabeam_proto::error_text::chain_text(messages)
}

/// `what` failed with `status`, as an error for the command's exit.
pub fn rpc_error(what: impl std::fmt::Display, status: &Status) -> anyhow::Error {
    anyhow::anyhow!("{what}: {}", status_text(status))
}

/// Whether a call may succeed when tried again: the coordinator restarting, unreachable, or
/// without Redis for a moment. The coordinator's own refusals are never `UNKNOWN`: that is a
/// broken HTTP/2 connection.
pub fn is_transient(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::Unknown | Code::Cancelled | Code::Aborted | Code::DeadlineExceeded
    )
}

/// Backoff between tries of a call that follows a job: 0.2 s doubling to 5 s, for as long as
/// `give_up_after` lets pass without one success.
pub struct Retry {
    give_up_after: Duration,
    failing_since: Option<Instant>,
    failures: u32,
}

impl Retry {
    pub fn new(give_up_after: Duration) -> Self {
        Self { give_up_after, failing_since: None, failures: 0 }
    }

    /// After a call that worked: the next failure starts a fresh outage.
    pub fn succeeded(&mut self) {
        if self.failures > 0 {
            crate::errln!("reconnected to the coordinator");
        }
        self.failing_since = None;
        self.failures = 0;
    }

    /// After a failure of `what`: waits before the next try, or returns the error when the
    /// failure is not one to retry or the outage has lasted too long.
    pub async fn failed(&mut self, what: &str, status: &Status) -> anyhow::Result<()> {
        let since = *self.failing_since.get_or_insert_with(Instant::now);
        if !is_transient(status) || since.elapsed() >= self.give_up_after {
            let waited = if self.failures > 0 {
                format!(
                    " (the coordinator was unreachable for {:.0} s, --reconnect-secs)",
                    since.elapsed().as_secs_f64()
                )
            } else {
                String::new()
            };
            return Err(anyhow::anyhow!("{what}: {}{waited}", status_text(status)));
        }
        self.failures += 1;
        let delay = Duration::from_millis(200 * 2u64.pow(self.failures.min(5) - 1)).min(Duration::from_secs(5));
        if self.failures == 1 || self.failures % 10 == 0 {
            crate::errln!("{what}: {}; retrying (for up to {} s)", status_text(status), self.give_up_after.as_secs());
        }
        tokio::time::sleep(delay).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_read_as_their_protocol_names() {
        assert_eq!(code_name(Code::NotFound), "NOT_FOUND");
        assert_eq!(code_name(Code::Ok), "OK");
        assert_eq!(code_name(Code::FailedPrecondition), "FAILED_PRECONDITION");
        let text = status_text(&Status::not_found("no job job-0000000000000001"));
        assert_eq!(text, "NOT_FOUND: no job job-0000000000000001");
    }

    #[test]
    fn only_transport_trouble_is_retried() {
        assert!(is_transient(&Status::unavailable("redis: connection refused")));
        assert!(is_transient(&Status::unknown("h2 protocol error: error reading a body from connection")));
        assert!(!is_transient(&Status::not_found("no job")));
        assert!(!is_transient(&Status::invalid_argument("bad")));
    }
}
