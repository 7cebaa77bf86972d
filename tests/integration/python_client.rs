//! The Python client (`clients/python`) against a real fleet: `redis-server`, the coordinator
//! and a worker holding the tiny fixture. `pip install ./clients/python` into a venv under
//! `target/` (made once, kept between runs; the client itself is reinstalled every run), then
//! the README's example as it is written there, whose predictions must equal `lorabeam submit
//! --output`'s and the greedy golden's; then the rest of the API (idempotency keys, result
//! offsets, paging, workers, errors, cancel, the `DataEnd` checksum), and the client's own
//! tests against a fake coordinator (`clients/python/tests`).

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::cluster::{worker, Coordinator, Redis};
use support::*;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `target/python-client-venv` with `clients/python` freshly installed; returns its python.
/// The venv and the client's dependencies are kept between runs (keyed by pyproject.toml);
/// the client is built again from the checkout every time.
fn client_venv() -> PathBuf {
    let venv = repo().join("target/python-client-venv");
    let python = venv.join("bin/python");
    let run = |command: &mut Command, what: &str| {
        let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(
            out.status.success(),
            "{what} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    if !python.exists() {
        let base = std::env::var_os("LORABEAM_PYTHON").unwrap_or_else(|| "python3".into());
        run(Command::new(base).args(["-m", "venv"]).arg(&venv), "python3 -m venv target/python-client-venv");
    }
    let pyproject = std::fs::read_to_string(repo().join("clients/python/pyproject.toml")).expect("pyproject.toml");
    let marker = venv.join(".lorabeam-client-deps");
    let mut pip = Command::new(&python);
    pip.args(["-m", "pip", "install", "--disable-pip-version-check", "-q"]).current_dir(repo());
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(pyproject.as_str()) {
        pip.args(["--force-reinstall", "--no-deps"]);
    }
    run(pip.arg("./clients/python"), "pip install ./clients/python");
    std::fs::write(&marker, pyproject).expect("write the venv's marker");
    python
}

/// The README's Python example: the first ```python block after "### Python client".
fn readme_example() -> String {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let section = readme.split_once("### Python client").expect("README has a Python client section").1;
    let block = section.split_once("```python\n").expect("a python block").1;
    block.split_once("```").expect("the block ends").0.to_string()
}

/// Runs a Python script in the venv from the repository root; returns its stdout.
fn python(python: &Path, script: &str, args: &[&str]) -> String {
    let out = Command::new(python).arg("-c").arg(script).args(args).current_dir(repo()).output().expect("python runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("python stdout:\n{stdout}\npython stderr:\n{stderr}");
    assert!(out.status.success(), "the Python script failed:\n{stderr}");
    stdout.into_owned()
}

/// Each line of a predictions file, parsed: (id, predict).
fn predictions(path: &Path) -> Vec<(u64, Vec<u64>)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            let predict = v["predict"].as_array().expect("predict").iter().map(|t| t.as_u64().expect("id")).collect();
            (v["id"].as_u64().expect("id"), predict)
        })
        .collect()
}

/// The client's venv and a fleet (Redis, a coordinator, one tiny worker) for it; fields drop
/// in order, the processes before their folder.
struct PyFleet {
    _worker: support::cluster::Process,
    coordinator: Coordinator,
    _redis: Redis,
    dir: tempfile::TempDir,
    python_bin: PathBuf,
    _one_fleet: std::sync::MutexGuard<'static, ()>,
}

impl PyFleet {
    fn start() -> Self {
        // Held from the venv on: under `cargo test` two of these tests would race in pip.
        let one_fleet = support::one_fleet_at_a_time();
        let python_bin = client_venv();
        let dir = tempfile::tempdir().expect("tempdir");
        let redis = Redis::start(dir.path());
        let coordinator = Coordinator::start(&redis, dir.path(), None, &[]);
        let worker = worker(&redis, &coordinator.url(), dir.path(), "py", "tiny", &[]);
        Self { _worker: worker, coordinator, _redis: redis, dir, python_bin, _one_fleet: one_fleet }
    }
}

#[test]
fn the_readme_example_runs_against_a_fleet_and_gives_what_the_cli_gives() {
    let fleet = PyFleet::start();
    let (python_bin, dir, coordinator) = (&fleet.python_bin, &fleet.dir, &fleet.coordinator);

    // The example as the README has it, pointed at this fleet and at a file in the tempdir.
    let example = readme_example();
    assert_eq!(example.matches("\"http://127.0.0.1:50051\"").count(), 1, "{example}");
    assert_eq!(example.matches("\"predictions.jsonl\"").count(), 1, "{example}");
    let from_python = dir.path().join("python.jsonl");
    let script = example
        .replace("\"http://127.0.0.1:50051\"", &format!("{:?}", coordinator.url()))
        .replace("\"predictions.jsonl\"", &format!("{:?}", from_python.to_str().expect("utf-8")));
    let printed = python(python_bin, &script, &[]);
    assert!(printed.contains("126 predictions;"), "{printed}");
    assert!(printed.contains("completed 126 / 126"), "{printed}");

    // The same job through the CLI, with the greedy golden's flags (the example's).
    let from_cli = dir.path().join("cli.jsonl");
    let data = conformance_dir().join("data/e2e_test_public.jsonl");
    let mut args = strings(&["submit", "--coordinator", &coordinator.url(), "--model-id", "tiny", "--data"]);
    args.push(data.to_str().expect("utf-8").into());
    args.extend(decode_flags("greedy-f64"));
    args.extend(strings(&["--output", from_cli.to_str().expect("utf-8")]));
    let out = lorabeam(&args);
    assert!(out.status.success(), "lorabeam submit failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(predictions(&from_python), predictions(&from_cli), "the Python client and the CLI disagree");
    compare(&conformance_dir().join("golden/greedy-f64.jsonl"), &from_python, 1.0);
}

/// The rest of the API, on a handful of records.
const API_CHECKS: &str = r#"
import json, sys
import grpc
from lorabeam_client import Client, JobFailed, LorabeamError, fnv1a64, pb, state_name

url, data = sys.argv[1], sys.argv[2]
records = [json.loads(line) for line in open(data)][:6]
flags = dict(beam=1, no_repeat_ngram_size=0, eval_len=8, seq_len=256)
assert fnv1a64([b"a"]) == (1, 0xAF63DC4C8601EC8C)
assert fnv1a64([b"ab", b"c"]) == fnv1a64([b"abc"])
with Client(url, quiet=True) as lb:
    a = lb.submit(records, "tiny", idempotency_key="py-same", **flags)
    b = lb.submit(records, "tiny", idempotency_key="py-same", **flags)
    assert not a.existing and b.existing and b.job_id == a.job_id, (a, b)
    assert lb.wait(a.job_id).records_done == 6
    everything = list(lb.results(a.job_id))
    assert [p.id for p in everything] == list(range(6)), everything
    assert list(lb.results(a.job_id, offset=4)) == everything[4:]
    other = lb.submit(records[:2], "tiny", **flags)  # a fresh key: a job of its own
    assert other.job_id != a.job_id and not other.existing
    lb.wait(other.job_id)
    ids = [job.job_id for job in lb.jobs(page_size=1)]  # one job a page
    assert len(ids) == len(set(ids)) and {a.job_id, other.job_id} <= set(ids), ids
    workers = lb.workers()
    assert "tiny" in workers.model_ids and [w.model_id for w in workers.workers] == ["tiny"], workers
    try:
        lb.get("job-0000000000000000")
        raise SystemExit("an unknown job was found")
    except LorabeamError as e:
        assert e.code == grpc.StatusCode.NOT_FOUND, e
    try:
        lb.submit(records, "no-such-model", **flags)
        raise SystemExit("an unknown model was taken")
    except LorabeamError as e:
        assert e.code == grpc.StatusCode.FAILED_PRECONDITION and "no-such-model" in str(e), e
    try:
        lb.submit(b'{"context": "name : x", "completion": "y"}\n', "tiny")
        raise SystemExit("text JSONL was sent")
    except ValueError as e:
        assert "text JSONL" in str(e), e
    try:
        lb.submit(records, "tiny", temperature=0.7)
        raise SystemExit("an unknown flag was taken")
    except TypeError as e:
        assert "temperature" in str(e), e
    # A stream whose DataEnd does not match its chunks is refused whole.
    spec = pb.JobSpec(model_id="tiny", params=pb.DecodeParams(beam=1, eval_len=8, seq_len=256))
    body = (json.dumps(records[0]) + "\n").encode()
    cut = [pb.SubmitJobRequest(spec=spec), pb.SubmitJobRequest(chunk=pb.RecordChunk(jsonl=body)),
           pb.SubmitJobRequest(end=pb.DataEnd(bytes=len(body), fnv1a64=1))]
    try:
        lb.stub.SubmitJob(iter(cut))
        raise SystemExit("a bad checksum was taken")
    except grpc.RpcError as e:
        print("bad checksum:", e.code().name, e.details())
    # A long job, cancelled: cancel says so, wait raises JobFailed with its last status.
    everything_there = [json.loads(line) for line in open(data)]
    long = lb.submit(everything_there, "tiny", beam=10, eval_len=64, seq_len=256, shard_size=2)
    assert state_name(lb.cancel(long.job_id).state) == "cancelled"
    try:
        lb.wait(long.job_id)
        raise SystemExit("a cancelled job waited as completed")
    except JobFailed as e:
        assert state_name(e.status.state) == "cancelled", e
    print("api checks passed")
"#;

#[test]
fn the_python_api_keys_pages_cancels_and_refuses_as_the_cli_does() {
    let fleet = PyFleet::start();
    let (python_bin, coordinator) = (&fleet.python_bin, &fleet.coordinator);
    let data = conformance_dir().join("data/e2e_test_public.jsonl");
    let printed = python(python_bin, API_CHECKS, &[&coordinator.url(), data.to_str().expect("utf-8")]);
    assert!(printed.contains("api checks passed"), "{printed}");

    // What a real fleet does not show on demand: streams dropped half way (a restart), a lost
    // SubmitJob answer sent again under its key, failover, giving up; against a fake coordinator.
    let out = Command::new(python_bin)
        .args(["-m", "unittest", "discover", "-s", "clients/python/tests", "-v"])
        .current_dir(repo())
        .output()
        .expect("python runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.contains("\nOK"), "clients/python/tests failed:\n{stderr}");
}
