//! Shared helpers for the integration tests: where the conformance data lives, the fixture's
//! checkpoint layouts, comparing predictions with a golden, and running the real `lorabeam`
//! binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock};

use lorabeam_core::predictions::compare_files;

pub mod adapters;
pub mod cluster;
pub mod meteor_shim;
pub mod otlp;
pub mod rogue;
pub mod s3;
pub mod submissions;

/// The repository's conformance set (`tests/conformance`), or `$LORABEAM_CONFORMANCE_DIR`: any
/// folder of the same layout.
pub fn conformance_dir() -> PathBuf {
    let dir = std::env::var_os("LORABEAM_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance"));
    assert!(
        dir.join("fixture-tiny/lora_full.pt").exists(),
        "conformance data not found at {} (set LORABEAM_CONFORMANCE_DIR)",
        dir.display()
    );
    dir
}

/// Layouts not committed: `make_layouts.py` writes them from `lora_full.pt` at test time.
const GENERATED_LAYOUTS: &[&str] = &["base_pytorch_model.bin", "base_model.safetensors"];

/// A file of the tiny fixture; the base-model layouts are made on first use.
pub fn fixture(name: &str) -> PathBuf {
    let committed = conformance_dir().join("fixture-tiny").join(name);
    if committed.exists() || !GENERATED_LAYOUTS.contains(&name) {
        return committed;
    }
    generated_layouts().join(name)
}

/// `target/conformance-layouts`, made by `tests/conformance/make_layouts.py` with the project's
/// torch (`$PYTHON_SYS_EXECUTABLE`, set by scripts/env.sh). scripts/test.sh runs the script once
/// before the tests; here it runs once per test process, and returns at once when the layouts
/// are up to date. It works under a lock and renames each file into place complete, so tests
/// that race here (nextest runs each in its own process) never read a partial file.
fn generated_layouts() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/conformance-layouts");
        let source = conformance_dir().join("fixture-tiny/lora_full.pt");
        let python = std::env::var_os("PYTHON_SYS_EXECUTABLE").unwrap_or_else(|| "python3".into());
        let out = Command::new(&python)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/make_layouts.py"))
            .arg(&dir)
            .arg(&source)
            .output()
            .expect("python runs make_layouts.py");
        assert!(out.status.success(), "make_layouts.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
        dir
    })
}

/// Held by every test that runs a fleet of real workers, until it has stopped them. Under
/// cargo-nextest (scripts/test.sh) each test is a process of its own and this lock guards
/// nothing: the `fleet` test group of `.config/nextest.toml` keeps those tests apart. Under
/// `cargo test`, whose tests are threads of one process, it does the same job.
pub fn one_fleet_at_a_time() -> MutexGuard<'static, ()> {
    static FLEET: Mutex<()> = Mutex::new(());
    FLEET.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The common flags of every golden: the tiny fixture's shape and LoRA settings.
pub fn tiny_model_args() -> Vec<String> {
    let config = fixture("config.json");
    ["--model_config", config.to_str().expect("utf-8 path"), "--lora_dim", "4", "--lora_alpha", "32"]
        .into_iter()
        .map(String::from)
        .collect()
}

pub fn lorabeam(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lorabeam")).args(args).output().expect("lorabeam runs")
}

pub fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// Runs `lorabeam run` and returns the predictions file it wrote, failing with its stderr.
pub fn run_ok(args: &[String], work_dir: &Path, output_file: &str) -> PathBuf {
    let mut all = strings(&["run", "--device", "cpu", "--threads", "1", "--work_dir"]);
    all.push(work_dir.to_str().expect("utf-8 path").to_string());
    all.extend(strings(&["--output_file", output_file]));
    all.extend_from_slice(args);
    let out = lorabeam(&all);
    assert!(out.status.success(), "lorabeam {all:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    work_dir.join(output_file)
}

/// Compares a predictions file with a golden as the conformance README defines it (padding
/// zeros ignored, exactly the golden's ids, strictly ascending) and requires at least
/// `min_rate` of the lines identical. Returns the figure `identical: K/N (P%)`.
pub fn compare(golden: &Path, predictions: &Path, min_rate: f64) -> String {
    let agreement = compare_files(golden, predictions).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        agreement.rate() >= min_rate,
        "{} against {}: {agreement}, below {min_rate}; first differing ids {:?}",
        predictions.display(),
        golden.display(),
        &agreement.differing_ids[..agreement.differing_ids.len().min(10)]
    );
    agreement.to_string()
}

/// The first `n` lines of `src`, written to `dir/name`.
pub fn head(src: &Path, n: usize, dir: &Path, name: &str) -> PathBuf {
    let text = std::fs::read_to_string(src).expect("read data");
    let mut out: String = text.lines().take(n).collect::<Vec<_>>().join("\n");
    out.push('\n');
    let path = dir.join(name);
    std::fs::write(&path, out).expect("write data");
    path
}

/// Each public golden and the flags it was made with (from the conformance README).
pub const GOLDENS: &[(&str, &str, f64)] = &[
    (
        "readme-f64",
        "--beam 10 --length_penalty 0.8 --no_repeat_ngram_size 4 --repetition_penalty 1.0 --eos_token_id 628 \
         --eval_len 64 --seq_len 256 --batch_size 1 --dtype f64",
        1.0,
    ),
    (
        "readme-f32",
        "--beam 10 --length_penalty 0.8 --no_repeat_ngram_size 4 --repetition_penalty 1.0 --eos_token_id 628 \
         --eval_len 64 --seq_len 256 --batch_size 1 --dtype f32",
        0.99,
    ),
    (
        "knobs-f64",
        "--beam 4 --length_penalty 1.0 --no_repeat_ngram_size 3 --repetition_penalty 1.3 --min_length 8 \
         --eval_len 40 --seq_len 256 --batch_size 3 --dtype f64",
        1.0,
    ),
    ("greedy-f64", "--beam 1 --no_repeat_ngram_size 0 --eval_len 32 --seq_len 256 --batch_size 4 --dtype f64", 1.0),
    (
        "truncate-f64",
        "--beam 5 --length_penalty 0.6 --no_repeat_ngram_size 4 --eos_token_id 628 --eval_len 32 --seq_len 64 \
         --batch_size 2 --dtype f64",
        1.0,
    ),
];

/// A golden's flags and the share of lines that must match it.
pub fn golden(name: &str) -> (&'static str, f64) {
    let (_, flags, rate) = GOLDENS.iter().find(|(n, _, _)| *n == name).expect("known golden");
    (flags, *rate)
}

/// A golden's decoding flags without `--dtype` (which a fleet sets on its workers).
pub fn decode_flags(name: &str) -> Vec<String> {
    let (flags, _) = golden(name);
    let mut out = Vec::new();
    let mut words = flags.split_whitespace();
    while let Some(word) = words.next() {
        if word == "--dtype" {
            words.next();
        } else {
            out.push(word.to_string());
        }
    }
    out
}

/// A live process's peak resident set (`VmHWM`), in MiB; NaN when it cannot be read.
pub fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    kib / 1024.0
}
