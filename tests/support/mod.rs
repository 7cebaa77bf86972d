//! Shared helpers for the integration tests: where the conformance data lives, and running
//! the real `lorabeam` binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod cluster;

/// `../shared/conformance` beside the repository, or `$LORABEAM_CONFORMANCE_DIR`.
pub fn conformance_dir() -> PathBuf {
    let dir = std::env::var_os("LORABEAM_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance"));
    assert!(
        dir.join("README.md").exists(),
        "conformance data not found at {} (set LORABEAM_CONFORMANCE_DIR)",
        dir.display()
    );
    dir
}

pub fn fixture(name: &str) -> PathBuf {
    conformance_dir().join("fixture-tiny").join(name)
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

/// `compare.py GOLDEN PREDICTIONS --require-order --min-rate RATE`; returns its last line.
pub fn compare(golden: &Path, predictions: &Path, min_rate: f64) -> String {
    let out = Command::new("python3")
        .arg(conformance_dir().join("compare.py"))
        .arg(golden)
        .arg(predictions)
        .args(["--require-order", "--min-rate", &min_rate.to_string()])
        .output()
        .expect("python3 runs compare.py");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "compare.py {} failed:\n{text}", golden.display());
    text.lines().last().unwrap_or_default().to_string()
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
