//! Adapters in the fleet, end to end with real processes on loopback: one worker holds the
//! tiny fixture's bare base once and serves loralib adapters by name from its --adapter-dir
//! (the fixture's own `lora_only.pt`, and a variant of it with lora_B flipped). Jobs of two
//! adapters and of the bare base run at once, and each output equals `lorabeam run` decoding it
//! alone with its adapter through the LoRA-only checkpoint path (the fixture's adapter also
//! equals the public golden); an unknown adapter, and an adapter job on a worker without
//! --adapter-dir, fail the job naming it; `lorabeam sweep` (two loralib adapters and a PEFT
//! one made by peft, equal to the fixture's) writes each adapter's file and the comparison
//! table.

use crate::support;

use std::path::{Path, PathBuf};

use lorabeam_proto::v1::{GetJobRequest, JobServiceClient, JobState, JobStatus};
use support::adapters::{adapter_dir, peft_equivalent};
use support::cluster::{adapter_worker, worker, Coordinator, Redis};
use support::*;

/// The greedy golden's batches (batch_size 4) stay whole in its first 40 lines.
const LINES: usize = 40;

fn data(dir: &Path) -> PathBuf {
    head(&conformance_dir().join("data/e2e_test_public.jsonl"), LINES, dir, "data.jsonl")
}

/// `lorabeam run` of `data` alone: the base with `adapter` (a loralib file) through the
/// LoRA-only checkpoint path, or the bare base when `None`.
fn run_alone(dir: &Path, data: &Path, adapter: Option<&Path>, name: &str) -> String {
    let mut args = strings(&["--data", data.to_str().expect("utf-8"), "--dtype", "f64"]);
    args.extend(decode_flags("greedy-f64"));
    let config = fixture("config.json");
    args.extend(strings(&["--model_config", config.to_str().expect("utf-8")]));
    let base = fixture("base_pytorch_model.bin").to_str().expect("utf-8").to_string();
    match adapter {
        Some(adapter) => {
            args.extend(strings(&["--init_checkpoint", adapter.to_str().expect("utf-8"), "--base_checkpoint"]));
            args.extend([base, "--lora_dim".into(), "4".into(), "--lora_alpha".into(), "32".into()]);
        }
        None => args.extend(["--init_checkpoint".to_string(), base]),
    }
    std::fs::read_to_string(run_ok(&args, dir, name)).expect("read predictions")
}

/// `lorabeam submit --wait` of `data` with `adapter` ("" for none), writing `output` when
/// given; whether the client exited 0, and its stderr.
fn submit(
    coordinator: &Coordinator,
    model_id: &str,
    data: &Path,
    adapter: &str,
    output: Option<&Path>,
) -> (bool, String) {
    let mut args = strings(&["submit", "--coordinator", &coordinator.url(), "--model-id", model_id, "--data"]);
    args.push(data.to_str().expect("utf-8").into());
    args.extend(decode_flags("greedy-f64"));
    args.extend(strings(&["--shard-size", "4", "--adapter", adapter, "--wait"]));
    if let Some(output) = output {
        args.extend(["--output".to_string(), output.to_str().expect("utf-8").into()]);
    }
    let out = lorabeam(&args);
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn status(coordinator: &Coordinator, job_id: &str) -> JobStatus {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let mut client = JobServiceClient::connect(coordinator.url()).await.expect("connect");
        client.get_job(GetJobRequest { job_id: job_id.into() }).await.expect("get_job").into_inner()
    })
}

/// The adapters' worker serves `tiny-base`, declared so jobs queued before it registers are taken.
const SERVES_BASE: &[&str] = &["--serve-model-ids", "tiny-base"];

#[test]
fn two_adapters_and_the_base_at_once_each_as_if_decoded_alone() {
    let _one_fleet = support::one_fleet_at_a_time();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (adapters, data) = (adapter_dir(d, &["flipped=-1.0"]), data(d));
    let redis = Redis::start(d);
    let coordinator = Coordinator::start(&redis, d, None, SERVES_BASE);
    let worker = adapter_worker(&redis, &coordinator.url(), d, "w", "tiny-base", &adapters, &[]);
    // Three clients at once, so the worker's batch mixes the three.
    let jobs: Vec<(&str, PathBuf)> =
        ["fixture", "flipped", ""].iter().map(|a| (*a, d.join(format!("out-{a}.jsonl")))).collect();
    let results: Vec<(bool, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|(adapter, output)| scope.spawn(|| submit(&coordinator, "tiny-base", &data, adapter, Some(output))))
            .collect();
        handles.into_iter().map(|h| h.join().expect("submit thread")).collect()
    });
    for ((adapter, _), (ok, stderr)) in jobs.iter().zip(&results) {
        assert!(ok, "adapter {adapter:?}: {stderr}\n{}", worker.stderr());
    }
    let golden = head(&conformance_dir().join("golden/greedy-f64.jsonl"), LINES, d, "golden.jsonl");
    eprintln!("adapter `fixture` against the public golden: {}", compare(&golden, &jobs[0].1, 1.0));
    let fixture_alone = run_alone(d, &data, Some(&adapters.join("fixture.pt")), "fixture-alone.jsonl");
    let flipped_alone = run_alone(d, &data, Some(&adapters.join("flipped.pt")), "flipped-alone.jsonl");
    let base_alone = run_alone(d, &data, None, "base-alone.jsonl");
    let served = |i: usize| std::fs::read_to_string(&jobs[i].1).expect("output");
    assert_eq!(served(0), fixture_alone, "adapter `fixture` in the fleet differs from decoding it alone");
    assert_eq!(served(1), flipped_alone, "adapter `flipped` in the fleet differs from decoding it alone");
    assert_eq!(served(2), base_alone, "the bare base in the fleet differs from decoding it alone");
    assert_ne!(fixture_alone, flipped_alone, "the two adapters decode differently");
    assert_ne!(fixture_alone, base_alone, "an adapter changes the output");
    let log = worker.stderr();
    assert_eq!(log.matches("loaded adapter").count(), 2, "each adapter loaded once:\n{log}");
}

#[test]
fn an_adapter_a_worker_cannot_find_fails_the_job_naming_it() {
    let _one_fleet = support::one_fleet_at_a_time();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (adapters, data) = (
        adapter_dir(d, &["flipped=-1.0"]),
        head(&conformance_dir().join("data/e2e_test_public.jsonl"), 4, d, "four.jsonl"),
    );
    let redis = Redis::start(d);
    let coordinator = Coordinator::start(&redis, d, None, SERVES_BASE);
    let _adapters = adapter_worker(&redis, &coordinator.url(), d, "w", "tiny-base", &adapters, &[]);
    // The fixture worker serves its one checkpoint, without --adapter-dir.
    let _plain = worker(&redis, &coordinator.url(), d, "plain", "tiny", &[]);
    let (ok, stderr) = submit(&coordinator, "tiny-base", &data, "nope", None);
    assert!(!ok, "a job with an unknown adapter fails");
    assert!(stderr.contains("ended failed"), "{stderr}");
    assert!(stderr.contains("adapter `nope` not found under --adapter-dir"), "{stderr}");
    let job_id = stderr.split_whitespace().skip_while(|w| *w != "job").nth(1).expect("a job id").to_string();
    let failed = status(&coordinator, &job_id);
    assert_eq!((failed.state, failed.adapter.as_str()), (JobState::Failed as i32, "nope"));
    assert!(failed.error.contains("adapter `nope` not found"), "{}", failed.error);
    let (ok, stderr) = submit(&coordinator, "tiny", &data, "fixture", None);
    assert!(!ok && stderr.contains("this worker has no --adapter-dir"), "never the base instead: {stderr}");
    let jobs = lorabeam(&strings(&["jobs", "--coordinator", &coordinator.url()]));
    let listing = String::from_utf8_lossy(&jobs.stdout);
    assert!(listing.contains("ADAPTER") && listing.contains("nope") && listing.contains("fixture"), "{listing}");
    let (ok, stderr) = submit(&coordinator, "tiny-base", &data, "../fixture", None);
    assert!(!ok && stderr.contains("INVALID_ARGUMENT: invalid job spec: adapter `../fixture` holds `/`"), "{stderr}");
}

#[test]
fn a_sweep_writes_each_adapters_file_and_the_table() {
    let _one_fleet = support::one_fleet_at_a_time();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (adapters, data) = (adapter_dir(d, &["flipped=-1.0"]), data(d));
    // A PEFT adapter too (DIR/NAME/): made by peft, equal to the fixture's loralib one.
    peft_equivalent(&adapters);
    let redis = Redis::start(d);
    // Scored without METEOR (a JVM per adapter): the sweep's table is what is checked here, and
    // METEOR through the coordinator is `fleet::a_scored_job_reports_what_score_reports_on_its_output`'s.
    let coordinator = Coordinator::start(&redis, d, None, &[SERVES_BASE, &["--no-meteor"]].concat());
    let _worker = adapter_worker(&redis, &coordinator.url(), d, "w", "tiny-base", &adapters, &[]);
    let out_dir = d.join("sweep");
    let mut args = strings(&["sweep", "--coordinator", &coordinator.url(), "--model-id", "tiny-base"]);
    args.extend(strings(&["--adapter", "fixture,flipped", "--adapter", "loralib_equiv", "--score", "--data"]));
    args.push(data.to_str().expect("utf-8").into());
    args.extend(decode_flags("greedy-f64"));
    args.extend(["--output-dir".to_string(), out_dir.to_str().expect("utf-8").into()]);
    let out = lorabeam(&args);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "sweep failed: {stderr}\n{}", coordinator.stderr());
    let golden = head(&conformance_dir().join("golden/greedy-f64.jsonl"), LINES, d, "golden.jsonl");
    eprintln!("sweep, adapter `fixture`: {}", compare(&golden, &out_dir.join("fixture.jsonl"), 1.0));
    eprintln!("sweep, PEFT adapter `loralib_equiv`: {}", compare(&golden, &out_dir.join("loralib_equiv.jsonl"), 1.0));
    let flipped_alone = run_alone(d, &data, Some(&adapters.join("flipped.pt")), "flipped-alone.jsonl");
    assert_eq!(std::fs::read_to_string(out_dir.join("flipped.jsonl")).expect("flipped.jsonl"), flipped_alone);
    let table: Vec<&str> = stdout.lines().skip_while(|l| !l.starts_with("ADAPTER")).collect();
    assert_eq!(table.len(), 4, "a header and a row per adapter:\n{stdout}");
    assert!(table[0].contains("LINES") && table[0].contains("TOKENS/S") && table[0].ends_with("CIDEr"), "{stdout}");
    for (row, adapter) in table[1..].iter().zip(["fixture", "flipped", "loralib_equiv"]) {
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!((cells[0], cells[1], cells[4]), (adapter, "40", "completed"), "{stdout}");
        assert!(cells[5].parse::<f64>().is_ok_and(|bleu| bleu > 0.0), "a BLEU score: {stdout}");
    }
    assert_eq!(redis.cli(&["XLEN", "lorabeam:queue:tiny-base"]), "0", "nothing is left queued");
}
