//! `lorabeam workers`: the fleet per model, from the workers' heartbeats: each live worker's
//! id, model, batch rows in use of its budget, items/s (smoothed by the worker) and when it
//! was last seen, and the model ids served that have no live worker.

use clap::Args;
use lorabeam_proto::v1::{ListWorkersRequest, ListWorkersResponse};

use super::aligned::{aligned_lines, Align};
use super::client::{block_on, shown, CoordinatorArgs};
use super::rpc::rpc_error;

#[derive(Debug, Args)]
pub struct WorkersArgs {
    #[command(flatten)]
    pub coordinator: CoordinatorArgs,
}

const HEADER: [&str; 5] = ["MODEL", "WORKER", "ROWS", "ITEMS/S", "LAST SEEN"];

pub fn workers(args: WorkersArgs) -> anyhow::Result<()> {
    block_on(async move {
        let mut client = args.coordinator.connect().await?;
        let fleet = client
            .list_workers(ListWorkersRequest {})
            .await
            .map_err(|s| rpc_error("listing workers", &s))?
            .into_inner();
        for line in workers_table(&fleet, now_ms()) {
            crate::outln!("{line}");
        }
        Ok(())
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// How long ago `then_ms` was, as `3 s ago`.
fn ago(then_ms: i64, now_ms: i64) -> String {
    format!("{} s ago", (now_ms - then_ms).max(0) / 1000)
}

/// The table: one row per live worker, grouped by model; a model served without a live worker
/// has a row saying so.
pub fn workers_table(fleet: &ListWorkersResponse, now_ms: i64) -> Vec<String> {
    if fleet.model_ids.is_empty() && fleet.workers.is_empty() {
        return vec!["no model ids are served: no worker has registered and --serve-model-ids declares none".into()];
    }
    let mut models: Vec<&str> = fleet.model_ids.iter().map(String::as_str).collect();
    for worker in &fleet.workers {
        if !models.contains(&worker.model_id.as_str()) {
            models.push(&worker.model_id);
        }
    }
    models.sort_unstable();
    let mut rows: Vec<[String; 5]> = Vec::new();
    for model in models {
        let mut live = 0;
        for w in fleet.workers.iter().filter(|w| w.model_id == model) {
            live += 1;
            rows.push([
                shown(model).into_owned(),
                shown(&w.worker_id).into_owned(),
                format!("{}/{}", w.rows_in_use, w.max_rows),
                format!("{:.1}", w.items_per_s),
                ago(w.last_seen_unix_ms, now_ms),
            ]);
        }
        if live == 0 {
            rows.push([shown(model).into_owned(), "(no live worker)".into(), "-".into(), "-".into(), "-".into()]);
        }
    }
    let rows: Vec<Vec<String>> = rows.into_iter().map(Vec::from).collect();
    aligned_lines(&HEADER, &rows, |_| Align::Left)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lorabeam_proto::v1::WorkerInfo;

    #[test]
    fn workers_are_listed_per_model_and_idle_models_say_so() {
        let worker = |id: &str, model: &str| WorkerInfo {
            worker_id: id.into(),
            model_id: model.into(),
            max_rows: 256,
            rows_in_use: 40,
            items_per_s: 12.34,
            last_seen_unix_ms: 10_000,
        };
        let fleet = ListWorkersResponse {
            workers: vec![worker("w-a", "tiny"), worker("w-b", "tiny")],
            model_ids: vec!["later".into(), "tiny".into()],
        };
        let lines = workers_table(&fleet, 13_500);
        assert_eq!(lines[0], "MODEL  WORKER            ROWS    ITEMS/S  LAST SEEN");
        assert_eq!(lines[1], "later  (no live worker)  -       -        -");
        assert_eq!(lines[2], "tiny   w-a               40/256  12.3     3 s ago");
        assert_eq!(lines.len(), 4, "{lines:#?}");
        let empty = workers_table(&ListWorkersResponse::default(), 0);
        assert!(empty[0].starts_with("no model ids are served"), "{empty:?}");
    }
}
