//! What the coordinator knows of its fleet: the model ids it takes jobs for (declared with
//! `--serve-model-ids`, or registered by any worker that ever heartbeated), the workers whose
//! heartbeat is live, and the `lorabeam_workers` gauge.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use lorabeam_proto::heartbeat::{live_workers, Heartbeat};
use lorabeam_proto::v1::{ListWorkersResponse, WorkerInfo};

use crate::error::{CoordinatorError, Result};
use crate::store::JobStore;

/// Model ids in an error or a listing, at most this many (the rest counted).
const MAX_LISTED_IDS: usize = 50;

#[derive(Clone)]
pub struct Fleet {
    store: JobStore,
    /// `--serve-model-ids`: served without a live worker (scale from zero).
    declared: Arc<BTreeSet<String>>,
}

impl Fleet {
    pub fn new(store: JobStore, declared: &[String]) -> Self {
        let declared: BTreeSet<String> = declared.iter().cloned().collect();
        for model_id in &declared {
            crate::metrics::METRICS.workers.with_label_values(&[model_id.as_str()]).set(0);
        }
        Self { store, declared: Arc::new(declared) }
    }

    /// Every model id jobs are taken for: declared, or registered by a worker that served it
    /// within the retention (registrations past it are removed here).
    pub async fn known_models(&self) -> Result<BTreeSet<String>> {
        let keys = &self.store.keys;
        let mut con = self.store.con.clone();
        let registered: Vec<String> =
            redis::cmd("SMEMBERS").arg(keys.registered_models()).query_async(&mut con).await?;
        let mut last_served = HashMap::new();
        for model_id in &registered {
            let score: Option<f64> =
                redis::cmd("ZSCORE").arg(keys.models_last_served()).arg(model_id).query_async(&mut con).await?;
            if let Some(ms) = score {
                last_served.insert(model_id.clone(), ms as i64);
            }
        }
        let now = now_ms();
        let verdicts = registrations(&registered, &last_served, now, self.store.retention());
        if !verdicts.unseen.is_empty() {
            // Registered before last-served times were kept: their clock starts now.
            let mut pipe = redis::pipe();
            for model_id in &verdicts.unseen {
                pipe.cmd("ZADD").arg(keys.models_last_served()).arg("NX").arg(now).arg(model_id).ignore();
            }
            pipe.query_async::<()>(&mut con).await?;
        }
        let mut known: BTreeSet<String> = verdicts.kept.into_iter().collect();
        for model_id in verdicts.expired {
            // A live worker serves it (its beat is newer than the retention, which may be
            // shorter than a heartbeat interval); one that beats again after this registers it again.
            if !self.live(&model_id).await?.is_empty() {
                known.insert(model_id);
            } else {
                redis::pipe()
                    .atomic()
                    .srem(keys.registered_models(), &model_id)
                    .ignore()
                    .zrem(keys.models_last_served(), &model_id)
                    .ignore()
                    .query_async::<()>(&mut con)
                    .await?;
                tracing::info!(%model_id, "model id forgotten: no worker has served it for the retention");
            }
        }
        known.extend(self.declared.iter().cloned());
        Ok(known)
    }

    /// Refuses a job for a model id no worker ever registered and the deployment does not
    /// declare: nothing would ever decode it.
    pub async fn check_model(&self, model_id: &str) -> Result<()> {
        let known = self.known_models().await?;
        if known.contains(model_id) {
            return Ok(());
        }
        Err(CoordinatorError::UnknownModel { model_id: model_id.to_string(), known: listed(&known) })
    }

    /// The live workers of one model.
    pub async fn live(&self, model_id: &str) -> Result<Vec<Heartbeat>> {
        Ok(live_workers(&mut self.store.con.clone(), &self.store.keys, model_id).await?)
    }

    /// Every known model and its live workers.
    pub async fn list(&self) -> Result<ListWorkersResponse> {
        let models = self.known_models().await?;
        let mut workers = Vec::new();
        for model_id in &models {
            for beat in self.live(model_id).await? {
                workers.push(WorkerInfo {
                    worker_id: beat.worker,
                    model_id: beat.model_id,
                    max_rows: beat.max_rows,
                    rows_in_use: beat.rows_in_use,
                    items_per_s: beat.items_per_s,
                    last_seen_unix_ms: beat.last_seen_ms,
                });
            }
        }
        Ok(ListWorkersResponse { workers, model_ids: models.into_iter().collect() })
    }

    /// Sets `lorabeam_workers{model_id}` for every known model (a scrape runs it).
    pub async fn refresh_gauge(&self) -> Result<()> {
        let gauge = &crate::metrics::METRICS.workers;
        for model_id in self.known_models().await? {
            let live = self.live(&model_id).await?.len();
            gauge.with_label_values(&[model_id.as_str()]).set(live as i64);
        }
        Ok(())
    }
}

/// What becomes of the registered model ids.
#[derive(Debug, Default, PartialEq)]
pub struct Registrations {
    /// Served within the retention, or not yet timed: jobs are taken for them.
    pub kept: Vec<String>,
    /// Without a last-served time (registered before they were kept): timed from now.
    pub unseen: Vec<String>,
    /// No worker has served them for the retention: forgotten, their jobs refused.
    pub expired: Vec<String>,
}

/// Sorts `registered` model ids by when a worker last served them (`last_served`, Unix ms).
pub fn registrations(
    registered: &[String],
    last_served: &HashMap<String, i64>,
    now_ms: i64,
    retention: std::time::Duration,
) -> Registrations {
    let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    let mut out = Registrations::default();
    for model_id in registered {
        match last_served.get(model_id) {
            None => {
                out.unseen.push(model_id.clone());
                out.kept.push(model_id.clone());
            }
            Some(&ms) if now_ms.saturating_sub(ms) > retention_ms => out.expired.push(model_id.clone()),
            Some(_) => out.kept.push(model_id.clone()),
        }
    }
    out
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Model ids as an error lists them: `a, b` (or `none`), the first [`MAX_LISTED_IDS`].
fn listed(ids: &BTreeSet<String>) -> String {
    if ids.is_empty() {
        return "none: no worker has registered yet and --serve-model-ids declares none".into();
    }
    let text: Vec<&str> = ids.iter().take(MAX_LISTED_IDS).map(String::as_str).collect();
    let more = ids.len().saturating_sub(MAX_LISTED_IDS);
    let more = if more > 0 { format!(" and {more} more") } else { String::new() };
    format!("{}{more}", text.join(", "))
}

/// `--serve-model-ids`: each id plain, as job model ids must be (they name Redis keys).
pub fn parse_model_ids(list: &[String]) -> std::result::Result<Vec<String>, String> {
    let mut ids = Vec::new();
    for id in list.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let plain = id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if id.len() > 128 || !plain {
            return Err(format!(
                "--serve-model-ids: model id {} must be 1 to 128 characters of letters, digits, `.`, `_` or `-`",
                lorabeam_core::quote::quote(id)
            ));
        }
        ids.push(id.to_string());
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_ids_are_checked_and_listed_in_order() {
        let ids = parse_model_ids(&["b".into(), " a ".into(), String::new()]).expect("plain");
        assert_eq!(ids, ["b", "a"]);
        let err = parse_model_ids(&["ok".into(), "no/slash".into()]).expect_err("refused");
        assert!(err.contains("--serve-model-ids") && err.contains("no/slash"), "{err}");
        let set: BTreeSet<String> = ids.into_iter().collect();
        assert_eq!(listed(&set), "a, b");
        assert!(listed(&BTreeSet::new()).starts_with("none"));
        let many: BTreeSet<String> = (0..60).map(|i| format!("m{i:02}")).collect();
        assert!(listed(&many).ends_with("m49 and 10 more"), "{}", listed(&many));
    }

    #[test]
    fn a_model_id_no_worker_served_for_the_retention_is_forgotten() {
        let registered: Vec<String> = ["fresh", "stale", "old-style"].map(String::from).to_vec();
        let last_served: HashMap<String, i64> = [("fresh".to_string(), 9_000), ("stale".to_string(), 1_000)].into();
        let sorted = registrations(&registered, &last_served, 10_000, std::time::Duration::from_secs(5));
        assert_eq!(sorted.kept, ["fresh", "old-style"]);
        assert_eq!(sorted.unseen, ["old-style"]);
        assert_eq!(sorted.expired, ["stale"]);
        let longer = registrations(&registered, &last_served, 10_000, std::time::Duration::from_secs(60));
        assert!(longer.expired.is_empty());
    }
}
