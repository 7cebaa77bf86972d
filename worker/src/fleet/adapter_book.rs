//! Which adapters a worker must not read again, and why: the loader thread asks before it reads
//! one and says when it is done. [`LocalBook`] remembers what this worker found; [`RedisBook`]
//! adds what the model's other workers found, and leaves a mark while it reads, so that an
//! adapter that kills its reader (a crash, the kernel's OOM killer) fails its job at the first
//! redelivery rather than killing every worker in turn until `--max-deliveries`. The rule that
//! reads the marks is [`lorabeam_proto::adapter_marks::judge`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use lorabeam_proto::adapter_marks::{self, AdapterLoading, BadAdapter, Incarnation, Verdict};
use lorabeam_proto::queue::Keys;
use redis::aio::ConnectionManager;

/// The loader thread's questions about adapters, by name and fingerprint.
pub trait AdapterBook: Send + 'static {
    /// Why `name`, with files `fingerprint`, must not be read; `None`: read it.
    fn refuse(&mut self, name: &str, fingerprint: &str) -> Option<String>;
    /// Reading starts.
    fn loading(&mut self, name: &str, fingerprint: &str);
    /// Reading ended: loaded, or bad for `failure`.
    fn loaded(&mut self, name: &str, fingerprint: &str, failure: Option<&str>);
}

/// What this worker itself found bad.
#[derive(Default)]
pub struct LocalBook {
    bad: HashMap<String, (String, String)>,
}

impl AdapterBook for LocalBook {
    fn refuse(&mut self, name: &str, fingerprint: &str) -> Option<String> {
        let (print, reason) = self.bad.get(name)?;
        (print == fingerprint).then(|| reason.clone())
    }

    fn loading(&mut self, _name: &str, _fingerprint: &str) {}

    fn loaded(&mut self, name: &str, fingerprint: &str, failure: Option<&str>) {
        match failure {
            Some(reason) => self.bad.insert(name.into(), (fingerprint.into(), reason.into())),
            None => self.bad.remove(name),
        };
    }
}

/// [`LocalBook`], shared with the model's other workers through Redis. Redis being away only
/// loses the sharing: every call is bounded in time, and a failure is logged, not raised.
pub struct RedisBook {
    local: LocalBook,
    con: ConnectionManager,
    runtime: tokio::runtime::Handle,
    bad_key: String,
    loading_key: String,
    me: Incarnation,
    stale_after: Duration,
    /// The mark of the adapter being read now, which a task refreshes until it is taken away.
    reading: Arc<tokio::sync::Mutex<Option<(String, AdapterLoading)>>>,
}

/// How long one Redis call of the book may take.
const CALL_LIMIT: Duration = Duration::from_secs(5);

fn now_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

impl RedisBook {
    /// A book for `model_id`'s adapters; `refresh` is how often a mark being read is refreshed
    /// (the heartbeat), and it goes stale after [`lorabeam_proto::heartbeat::TTL_INTERVALS`] of
    /// them. Spawns the refreshing task on `runtime`.
    pub fn new(
        con: ConnectionManager,
        keys: &Keys,
        model_id: &str,
        me: Incarnation,
        refresh: Duration,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        let book = Self {
            local: LocalBook::default(),
            con,
            runtime,
            bad_key: keys.bad_adapters(model_id),
            loading_key: keys.loading_adapters(model_id),
            me,
            stale_after: refresh * lorabeam_proto::heartbeat::TTL_INTERVALS,
            reading: Arc::default(),
        };
        let (reading, mut con, key) = (book.reading.clone(), book.con.clone(), book.loading_key.clone());
        book.runtime.spawn(async move {
            let mut tick = tokio::time::interval(refresh.max(Duration::from_millis(100)));
            loop {
                tick.tick().await;
                let mut reading = reading.lock().await;
                if let Some((name, mark)) = reading.as_mut() {
                    mark.refreshed_ms = now_ms();
                    let text = adapter_marks::to_text(mark);
                    let mut set = redis::cmd("HSET");
                    set.arg(&key).arg(name.as_str()).arg(text);
                    if let Ok(Err(e)) = tokio::time::timeout(CALL_LIMIT, set.query_async::<()>(&mut con)).await {
                        tracing::warn!(adapter = %name, error = %e, "cannot refresh the adapter's loading mark");
                    }
                }
            }
        });
        book
    }

    /// Runs one Redis call to its end or [`CALL_LIMIT`]; `None` (logged) when it fails.
    fn call<T: redis::FromRedisValue>(&self, what: &str, cmd: redis::Cmd) -> Option<T> {
        let mut con = self.con.clone();
        // The time limit is made inside the runtime: its timer is not this thread's.
        let done =
            self.runtime.block_on(async move { tokio::time::timeout(CALL_LIMIT, cmd.query_async(&mut con)).await });
        match done {
            Ok(Ok(value)) => Some(value),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "adapter marks: cannot {what} in Redis; this worker's own marks still hold");
                None
            }
            Err(_) => {
                tracing::warn!(
                    "adapter marks: Redis did not answer in time to {what}; this worker's own marks still hold"
                );
                None
            }
        }
    }

    fn mark_bad(&self, name: &str, fingerprint: &str, reason: &str) {
        let mark = BadAdapter {
            fingerprint: fingerprint.into(),
            reason: reason.into(),
            worker: self.me.worker.clone(),
            at_ms: now_ms(),
        };
        let mut cmd = redis::cmd("HSET");
        cmd.arg(&self.bad_key).arg(name).arg(adapter_marks::to_text(&mark));
        let _: Option<()> = self.call("mark an adapter bad", cmd);
    }
}

impl AdapterBook for RedisBook {
    fn refuse(&mut self, name: &str, fingerprint: &str) -> Option<String> {
        if let Some(reason) = self.local.refuse(name, fingerprint) {
            return Some(reason);
        }
        let mut cmd = redis::cmd("EVAL");
        // Both marks in one round trip.
        cmd.arg("return {redis.call('HGET', KEYS[1], ARGV[1]), redis.call('HGET', KEYS[2], ARGV[1])}")
            .arg(2)
            .arg(&self.bad_key)
            .arg(&self.loading_key)
            .arg(name);
        let (bad, loading): (Option<String>, Option<String>) = self.call("read the adapter's marks", cmd)?;
        let bad: Option<BadAdapter> = bad.as_deref().and_then(adapter_marks::parse);
        let loading: Option<AdapterLoading> = loading.as_deref().and_then(adapter_marks::parse);
        match adapter_marks::judge(name, fingerprint, bad.as_ref(), loading.as_ref(), &self.me, now_ms()) {
            Verdict::Load => None,
            Verdict::Bad(reason) => {
                self.local.loaded(name, fingerprint, Some(&reason));
                Some(reason)
            }
            Verdict::KilledItsReader(reason) => {
                tracing::warn!(adapter = %name, %reason, "an adapter killed the worker that read it");
                self.mark_bad(name, fingerprint, &reason);
                let mut cmd = redis::cmd("HDEL");
                cmd.arg(&self.loading_key).arg(name);
                let _: Option<()> = self.call("remove a dead worker's loading mark", cmd);
                self.local.loaded(name, fingerprint, Some(&reason));
                Some(reason)
            }
        }
    }

    fn loading(&mut self, name: &str, fingerprint: &str) {
        let mark = AdapterLoading {
            fingerprint: fingerprint.into(),
            worker: self.me.worker.clone(),
            incarnation: self.me.id.clone(),
            refreshed_ms: now_ms(),
            stale_after_ms: i64::try_from(self.stale_after.as_millis()).unwrap_or(i64::MAX),
        };
        let mut cmd = redis::cmd("HSET");
        cmd.arg(&self.loading_key).arg(name).arg(adapter_marks::to_text(&mark));
        let _: Option<()> = self.call("mark an adapter as being read", cmd);
        self.runtime.block_on(async { *self.reading.lock().await = Some((name.to_string(), mark)) });
    }

    fn loaded(&mut self, name: &str, fingerprint: &str, failure: Option<&str>) {
        // Taken from the refreshing task first, under its lock, so no refresh lands after the
        // removal and leaves a mark that would read as a dead reader.
        self.runtime.block_on(async { self.reading.lock().await.take() });
        let mut cmd = redis::cmd("HDEL");
        cmd.arg(&self.loading_key).arg(name);
        let _: Option<()> = self.call("remove the adapter's loading mark", cmd);
        match failure {
            Some(reason) => self.mark_bad(name, fingerprint, reason),
            None => {
                let mut cmd = redis::cmd("HDEL");
                cmd.arg(&self.bad_key).arg(name);
                let _: Option<()> = self.call("clear the adapter's old bad mark", cmd);
            }
        }
        self.local.loaded(name, fingerprint, failure);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_refused_until_the_files_change_or_it_loads() {
        let mut book = LocalBook::default();
        assert_eq!(book.refuse("a", "f1"), None);
        book.loaded("a", "f1", Some("broken"));
        assert_eq!(book.refuse("a", "f1").as_deref(), Some("broken"));
        assert_eq!(book.refuse("a", "f2"), None, "changed files are tried again");
        book.loaded("a", "f2", None);
        assert_eq!(book.refuse("a", "f1"), None, "a good load clears the mark");
    }
}
