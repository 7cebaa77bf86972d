//! WebNLG and DART scoring through the fleet (real `redis-server`, coordinator and worker on
//! loopback): a job submitted with `--score --task webnlg` carries its task in its spec, the
//! coordinator scores it at completion with eval.py's metrics per S, U and A row (the lines'
//! `cate` sent with the job), `submit --wait` prints that table and its JSON equals `lorabeam
//! score --task webnlg` on the job's output; a `sweep` over two adapters prints the task's
//! columns; a task the intake cannot mean is refused by name.

use crate::support;

use std::path::{Path, PathBuf};

use support::adapters::adapter_dir;
use support::cluster::{adapter_worker, Coordinator};
use support::*;

/// Twenty seen lines and twenty unseen ones of the committed WebNLG subset (text form, `cate`).
fn webnlg_lines(dir: &Path) -> PathBuf {
    let source = conformance_dir().join("webnlg-dart/webnlg/test_formatted.jsonl");
    let text = std::fs::read_to_string(source).expect("WebNLG subset");
    let lines: Vec<&str> = text.lines().collect();
    let picked: Vec<&str> = lines[..20].iter().chain(&lines[200..220]).copied().collect();
    let path = dir.join("webnlg.jsonl");
    std::fs::write(&path, picked.join("\n") + "\n").expect("write data");
    path
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn ok(args: &[String]) -> String {
    let out = lorabeam(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_scored_webnlg_job_and_a_sweep_print_the_tasks_table() {
    let _one_fleet = support::one_fleet_at_a_time();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (adapters, data) = (adapter_dir(d, &["flipped=-1.0"]), webnlg_lines(d));
    let redis = support::cluster::Redis::start(d);
    // Without METEOR (a JVM per job): its equality with eval.py is score_tasks' to check.
    let coordinator = Coordinator::start(&redis, d, None, &["--serve-model-ids", "tiny-base", "--no-meteor"]);
    let _worker = adapter_worker(&redis, &coordinator.url(), d, "w", "tiny-base", &adapters, &[]);
    let url = coordinator.url();
    let job = |extra: &[&str]| {
        let mut args = strings(&["submit", "--coordinator", &url, "--model-id", "tiny-base", "--adapter", "fixture"]);
        args.extend(strings(&["--data", p(&data), "--wait", "--score", "--task", "webnlg"]));
        args.extend(decode_flags("greedy-f64"));
        args.extend(strings(extra));
        args
    };
    let table = ok(&job(&[]));
    for row in ["WEBNLG SCORES (gpt2_decode.py --ref_type webnlg --ref_num 6", "S (seen)", "U (unseen)", "A (all)"] {
        assert!(table.contains(row), "{row}: {table}\n{}", coordinator.stderr());
    }
    let output = d.join("job.jsonl");
    let fleet = ok(&job(&["--json", "--output", p(&output)]));
    let fleet: serde_json::Value = serde_json::from_str(fleet.lines().last().unwrap_or_default()).expect("JSON");
    let args = strings(&["score", "--task", "webnlg", "--data", p(&data), "--predictions", p(&output)]);
    let local = ok(&[args, strings(&["--json", "--no-meteor"])].concat());
    let mut local: serde_json::Value = serde_json::from_str(local.lines().last().unwrap_or_default()).expect("JSON");
    local.as_object_mut().map(|o| o.remove("eval_py_verbatim"));
    assert_eq!(fleet, local, "the fleet's report is lorabeam score's on its output");
    for row in ["seen", "unseen", "all"] {
        assert!(fleet["scores"][row]["items"].as_u64().is_some_and(|n| n > 0), "{row}: {fleet}");
    }

    let out_dir = d.join("sweep");
    let mut args =
        strings(&["sweep", "--coordinator", &url, "--model-id", "tiny-base", "--adapter", "fixture,flipped"]);
    args.extend(strings(&["--score", "--task", "webnlg", "--data", p(&data), "--output-dir", p(&out_dir)]));
    args.extend(decode_flags("greedy-f64"));
    let stdout = ok(&args);
    let table: Vec<&str> = stdout.lines().skip_while(|l| !l.starts_with("ADAPTER")).collect();
    assert_eq!(table.len(), 3, "a header and a row per adapter:\n{stdout}");
    let header: Vec<&str> = table[0].split_whitespace().collect();
    let paper = ["BLEU-S", "BLEU-U", "BLEU-A", "METEOR-S", "METEOR-U", "METEOR-A", "TER-S", "TER-U", "TER-A"];
    assert_eq!(header[5..], paper, "{stdout}");
    for (row, adapter) in table[1..].iter().zip(["fixture", "flipped"]) {
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!((cells[0], cells[1], cells[4]), (adapter, "40", "completed"), "{stdout}");
        assert!(cells[5].parse::<f64>().is_ok() && cells[11].parse::<f64>().is_ok(), "BLEU-S, TER-S: {stdout}");
    }
    // What the intake cannot mean is refused before anything is queued.
    let mut args = strings(&["submit", "--coordinator", &url, "--model-id", "tiny-base", "--data", p(&data)]);
    args.extend(strings(&["--score", "--task", "dart", "--filter", "seen"]));
    args.extend(decode_flags("greedy-f64"));
    let out = lorabeam(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("filter seen is for task webnlg"), "{stderr}");
}
