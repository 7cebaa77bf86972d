//! `lorabeam run` as a drop-in for gpt2_beam.py, run as the real binary: the LoRA README's
//! command with gpu.py's launcher flags, argparse's "last value wins", both flag spellings on
//! every binary; and the loader refusing what would silently decode the wrong model.

use crate::support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use support::cluster::binary;
use support::*;

/// The first `n` lines of the public test data and of the readme-f64 golden (batch_size 1, so
/// a prefix decodes as it does in the whole file).
fn readme_prefix(dir: &Path, n: usize) -> (std::path::PathBuf, std::path::PathBuf) {
    let data = head(&conformance_dir().join("data/e2e_test_public.jsonl"), n, dir, "data.jsonl");
    let golden = head(&conformance_dir().join("golden/readme-f64.jsonl"), n, dir, "golden.jsonl");
    (data, golden)
}

#[test]
fn the_readme_command_with_launcher_flags_repeats_and_kebab_spellings_matches_the_golden() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, golden_prefix) = readme_prefix(dir.path(), 6);
    let work = dir.path().join("work");
    let checkpoint = fixture("lora_full.pt");
    let mut args = strings(&["run", "--platform", "local", "--local_rank=0", "--rank", "0", "--world_size", "1"]);
    args.extend(strings(&["--random_seed", "110", "--device", "cpu", "--threads", "1"]));
    args.extend(strings(&["--data", data.to_str().expect("utf-8")]));
    args.extend(strings(&["--init-checkpoint", checkpoint.to_str().expect("utf-8")]));
    // Given twice, as a wrapper script overriding its defaults would: the last one counts.
    args.extend(strings(&["--eval_len", "3", "--beam", "2"]));
    args.extend(golden("readme-f64").0.split_whitespace().map(String::from));
    args.extend(tiny_model_args());
    args.extend(strings(&["--work-dir", work.to_str().expect("utf-8"), "--output-file", "predict.jsonl"]));
    // The umask decides the output's mode, as for any file the user writes.
    let out = Command::new("sh")
        .arg("-c")
        .arg("umask 022 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_lorabeam"))
        .args(&args)
        .output()
        .expect("sh runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "lorabeam {args:?} failed:\n{stderr}");
    assert!(stderr.contains("note: ignoring gpu.py's launcher flags (--platform local, --local_rank 0"), "{stderr}");
    let predictions = work.join("predict.jsonl");
    eprintln!("readme command, 6 lines: {}", compare(&golden_prefix, &predictions, 1.0));
    let mode = std::fs::metadata(&predictions).expect("output").permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "umask 022 gives rw-r--r--, not {mode:o}");
}

#[test]
fn an_integer_device_is_a_cuda_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, _) = readme_prefix(dir.path(), 1);
    let checkpoint = fixture("lora_full.pt");
    let mut args = strings(&["run", "--device", "7", "--data", data.to_str().expect("utf-8"), "--init_checkpoint"]);
    args.push(checkpoint.to_str().expect("utf-8").into());
    args.extend(tiny_model_args());
    let out = lorabeam(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // No machine here has 8 GPUs; what matters is that `7` was read as the CUDA device.
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("device `cuda:7` is not available"), "{stderr}");
}

/// Each binary's every long flag answers to both spellings: a flag clap does not know is
/// refused as "unexpected argument", so a value error instead proves the spelling was taken.
#[test]
fn every_binary_takes_both_spellings_of_its_flags() {
    let cases: [(&str, &[&str], &str); 6] = [
        ("lorabeam", &["submit", "--model_id", "m", "--data", "x", "--eval-len", "nope"], "--eval_len"),
        ("lorabeam", &["run", "--data", "x", "--max-rows", "0"], "--max_rows"),
        ("lorabeam-worker", &["--model_id", "m", "--max-rows", "0"], "--max_rows"),
        ("lorabeam-worker", &["--model-id", "m", "--max_kv_mib", "nope"], "--max-kv-mib"),
        ("lorabeam-coordinator", &["--redis_url", "redis://x", "--retention_secs", "0"], "--retention-secs"),
        ("lorabeam-coordinator", &["--grace_secs", "nope"], "--grace-secs"),
    ];
    for (name, args, flag) in cases {
        let path = if name == "lorabeam" { env!("CARGO_BIN_EXE_lorabeam").into() } else { binary(name) };
        let out = Command::new(path).args(args).output().expect("runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name} {args:?}: {stderr}");
        assert!(!stderr.contains("unexpected argument"), "{name} {args:?} refused a spelling: {stderr}");
        assert!(stderr.contains("invalid value") && stderr.contains(flag), "{name} {args:?}: {stderr}");
    }
    let help = Command::new(binary("lorabeam-worker")).arg("--help").output().expect("runs");
    assert!(String::from_utf8_lossy(&help.stdout).contains("Every flag also answers to its other spelling"));
}

fn run_tiny(dir: &Path, extra: &[&str], model_flags: Vec<String>) -> (bool, String) {
    let (data, _) = readme_prefix(dir, 2);
    let checkpoint = fixture("lora_full.pt");
    let mut args = strings(&["run", "--device", "cpu", "--threads", "1", "--data", data.to_str().expect("utf-8")]);
    args.extend(strings(&["--init_checkpoint", checkpoint.to_str().expect("utf-8")]));
    args.extend(model_flags);
    args.extend(strings(&["--eval_len", "4", "--seq_len", "64", "--work_dir", dir.to_str().expect("utf-8")]));
    args.extend(strings(extra));
    let out = lorabeam(&args);
    (out.status.success(), String::from_utf8_lossy(&out.stderr).to_string())
}

#[test]
fn a_lora_checkpoint_without_lora_dim_is_refused_unless_the_base_is_asked_for() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = fixture("config.json").to_str().expect("utf-8").to_string();
    let (ok, err) = run_tiny(dir.path(), &[], strings(&["--model_config", &config]));
    assert!(!ok, "decoding the bare base by omission must fail");
    assert!(err.contains("holds LoRA tensors of rank r=4") && err.contains("pass --lora_dim 4"), "{err}");
    assert!(!dir.path().join("beam_prediction.jsonl").exists());
    let (ok, err) = run_tiny(dir.path(), &["--lora_dim", "0"], strings(&["--model_config", &config]));
    assert!(ok, "--lora_dim 0 asks for the base explicitly: {err}");
    assert!(dir.path().join("beam_prediction.jsonl").exists());
}

#[test]
fn shape_errors_say_what_the_checkpoint_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = fixture("config.json").to_str().expect("utf-8").to_string();
    let (ok, err) = run_tiny(dir.path(), &["--lora_dim", "8"], strings(&["--model_config", &config]));
    assert!(!ok && err.contains("--lora_dim 8 does not match the checkpoint, whose LoRA is r=4"), "{err}");
    let (ok, err) = run_tiny(dir.path(), &["--lora_dim", "4"], strings(&["--model_card", "gpt2.md"]));
    assert!(!ok, "{err}");
    assert!(err.contains("the checkpoint is not --model_card gpt2.md"), "{err}");
    assert!(err.contains("it has vocab_size 50257, n_embd 64; pass --model_config"), "{err}");
}

#[test]
fn errors_say_each_cause_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, _) = readme_prefix(dir.path(), 1);
    let missing = dir.path().join("missing.pt");
    let args = ["run", "--device", "cpu", "--data", data.to_str().expect("utf-8"), "--init_checkpoint"];
    let out = lorabeam(&[strings(&args), vec![missing.to_str().expect("utf-8").into()]].concat());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("No such file or directory").count(), 1, "{stderr}");
    // host:port is taken as http://host:port; nothing listens on port 1.
    let out = lorabeam(&strings(&["jobs", "--coordinator", "127.0.0.1:1"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("cannot reach http://127.0.0.1:1"), "{stderr}");
    assert_eq!(stderr.matches("transport error").count(), 1, "{stderr}");
    assert_eq!(stderr.matches("tcp connect error").count(), 1, "{stderr}");
}
