//! Adapters on a shared base, through the real `lorabeam run`: PEFT adapters made by peft
//! itself decode exactly as peft's own `merge_and_unload()` of them, a PEFT adapter equal to
//! the fixture's loralib checkpoint reproduces the reference's goldens, and adapters mixed in
//! one running batch (with the bare base) each decode as they do alone.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use support::*;

/// Runs `tests/conformance/make_peft_adapters.py` with the project's venv (torch, peft and
/// transformers, from scripts/setup.sh) into `target/peft-adapters/`: once per test process, and
/// at once when they are up to date (the script works under a lock, so tests may race here).
fn make_adapters(args: &[&str]) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/peft-adapters");
    let python = std::env::var_os("PYTHON_SYS_EXECUTABLE").unwrap_or_else(|| "python3".into());
    let out = Command::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/make_peft_adapters.py"))
        .arg(args[0])
        .arg(&dir)
        .args(&args[1..])
        .output()
        .expect("python runs make_peft_adapters.py");
    assert!(out.status.success(), "make_peft_adapters.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
    dir
}

/// A random f64 GPT-2 with two PEFT adapters and peft's merges of them (see the script).
fn random_adapters() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| make_adapters(&["random"]))
}

/// The PEFT adapter equal to `fixture-tiny/lora_only.pt` (r 4, alpha 32).
fn loralib_equivalent() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let config = fixture("config.json");
    let lora_only = fixture("lora_only.pt");
    let paths = [config.to_str().expect("utf-8"), lora_only.to_str().expect("utf-8")];
    DIR.get_or_init(|| make_adapters(&["from-loralib", paths[0], paths[1], "4", "32"])).join("loralib_equiv")
}

fn path(p: &Path) -> String {
    p.to_str().expect("utf-8 path").to_string()
}

/// Decoding flags for the random model: beam search with its penalties, in f64.
fn random_model_args(data_dir: &Path) -> Vec<String> {
    let data = head(&conformance_dir().join("data/e2e_test_public.jsonl"), 24, data_dir, "data.jsonl");
    let mut args = strings(&["--data", &path(&data), "--model_config"]);
    args.push(path(&random_adapters().join("config.json")));
    args.extend(strings(&[
        "--beam",
        "4",
        "--length_penalty",
        "0.8",
        "--no_repeat_ngram_size",
        "3",
        "--eval_len",
        "16",
        "--seq_len",
        "96",
        "--batch_size",
        "1",
        "--dtype",
        "f64",
    ]));
    args
}

/// `lorabeam run` with `extra`; returns its predictions file.
fn run_random(extra: &[String], work_dir: &Path) -> PathBuf {
    let mut args = random_model_args(work_dir);
    args.extend_from_slice(extra);
    run_ok(&args, work_dir, "predictions.jsonl")
}

fn base_with(adapters: &[(&str, &Path)]) -> Vec<String> {
    let mut args = strings(&["--base_checkpoint"]);
    args.push(path(&random_adapters().join("base.safetensors")));
    for (name, dir) in adapters {
        args.push("--adapter".into());
        args.push(format!("{name}={}", path(dir)));
    }
    args
}

fn merged(name: &str) -> Vec<String> {
    vec!["--init_checkpoint".into(), path(&random_adapters().join(format!("{name}.merged.safetensors")))]
}

fn agreement(a: &Path, b: &Path) -> lorabeam_core::predictions::Agreement {
    lorabeam_core::predictions::compare_files(a, b).unwrap_or_else(|e| panic!("{e}"))
}

/// PEFT adapters, alone and mixed. Alone: rsLoRA with rank and alpha patterns over all four
/// target modules (safetensors), and a regex `target_modules` with `fan_in_fan_out` false
/// (adapter_model.bin), each decode as the full model peft merged, and differently from the
/// base. Mixed: the two adapters and the bare base in one running batch (both attention paths,
/// both adapter maths): each output equals peft's merged model decoded alone, and (low-rank)
/// the adapter decoded alone with `--adapter`; the run prints one table row per adapter.
#[test]
fn a_mixed_batch_decodes_each_adapter_as_alone() {
    let dirs = random_adapters();
    let alone = |extra: Vec<String>, subdir: &str| -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        run_random(&extra, dir.path());
        let out = dir.path().join(subdir).join("predictions.jsonl");
        (dir, out)
    };
    let mut base_args = strings(&["--init_checkpoint"]);
    base_args.push(path(&dirs.join("base.safetensors")));
    let names = ["all4", "regex_bin"];
    let merged_models: Vec<_> = names.iter().map(|n| (*n, alone(merged(n), ""))).collect();
    let adapters_alone: Vec<_> = names.iter().map(|n| (*n, alone(base_with(&[(n, &dirs.join(n))]), n))).collect();
    let base = ("base", alone(base_args, ""));
    for ((name, (_, merged)), (_, (_, ours))) in merged_models.iter().zip(&adapters_alone) {
        eprintln!("{name} against peft's merge_and_unload: {}", compare(merged, ours, 1.0));
        let against_base = agreement(&base.1 .1, ours);
        assert!(against_base.rate() < 0.5, "{name} barely changes the base: {against_base}");
    }
    for (attention, math) in [("batched", "low-rank"), ("per-group", "low-rank"), ("batched", "merged")] {
        let work = tempfile::tempdir().expect("tempdir");
        let mut args = strings(&["run", "--device", "cpu", "--threads", "1", "--work_dir", &path(work.path())]);
        args.extend(strings(&["--output_file", "predictions.jsonl", "--max_rows", "1000", "--attention", attention]));
        args.extend(strings(&["--adapter-math", math]));
        args.extend(random_model_args(work.path()));
        args.extend(base_with(&[("all4", &dirs.join("all4")), ("regex_bin", &dirs.join("regex_bin"))]));
        args.push("--include_base".into());
        let out = lorabeam(&args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "lorabeam failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let header = stdout.lines().next().unwrap_or_default();
        assert!(["adapter", "lines", "tokens", "seconds"].iter().all(|h| header.contains(h)), "{stdout}");
        let mut references: Vec<(&str, &str, &Path)> =
            merged_models.iter().map(|(n, d)| (*n, "merged model", d.1.as_path())).collect();
        references.push((base.0, "base", base.1 .1.as_path()));
        if math == "low-rank" {
            references.extend(adapters_alone.iter().map(|(n, d)| (*n, "--adapter alone", d.1.as_path())));
        }
        for (name, what, single) in references {
            let row = stdout.lines().find(|l| l.split_whitespace().next() == Some(name));
            assert!(row.is_some_and(|r| r.split_whitespace().nth(1) == Some("24")), "no row for {name}:\n{stdout}");
            let mixed = work.path().join(name).join("predictions.jsonl");
            let verdict = compare(single, &mixed, 1.0);
            eprintln!("{attention} {math} {name} mixed against {what}: {verdict}");
        }
    }
}

/// Decodes the public test lines on the fixture's base with `adapters` in one run, each as a
/// golden's flags say, and compares each adapter's predictions with that golden.
fn decode_adapters(golden_name: &str, adapters: &[(&str, PathBuf)]) {
    let data = conformance_dir().join("data/e2e_test_public.jsonl");
    let (flags, rate) = golden(golden_name);
    let work = tempfile::tempdir().expect("tempdir");
    let mut args = strings(&["--data", &path(&data), "--model_config", &path(&fixture("config.json"))]);
    args.extend(strings(&["--lora_alpha", "32", "--max_rows", "400", "--base_checkpoint"]));
    args.push(path(&fixture("base_pytorch_model.bin")));
    for (name, adapter) in adapters {
        args.extend(strings(&["--adapter", &format!("{name}={}", path(adapter))]));
    }
    args.extend(flags.split_whitespace().map(String::from));
    run_ok(&args, work.path(), "predictions.jsonl");
    let golden = conformance_dir().join(format!("golden/{golden_name}.jsonl"));
    for (name, _) in adapters {
        let verdict = compare(&golden, &work.path().join(name).join("predictions.jsonl"), rate);
        eprintln!("{name} adapter against {golden_name}: {verdict}");
    }
}

/// The fixture's loralib LoRA as a PEFT adapter (A' = [A_q; A_v], B' block-structured,
/// r' = 8, alpha' = 64) and the loralib `lora_only.pt` itself as an adapter, decoded together
/// on the base: both reproduce the reference's f64 golden token for token.
#[test]
fn adapters_equal_to_the_fixture_reproduce_the_goldens() {
    decode_adapters("readme-f64", &[("peft", loralib_equivalent()), ("loralib", fixture("lora_only.pt"))]);
}

/// The loralib adapter in f32: the low-rank math rounds unlike a merged model in f32, and stays
/// within the f32 golden's bound. (A test of its own, so it runs beside the f64 one.)
#[test]
fn adapters_equal_to_the_fixture_reproduce_the_f32_golden_within_its_bound() {
    decode_adapters("readme-f32", &[("loralib", fixture("lora_only.pt"))]);
}

/// Flags `--adapter` cannot go with are refused before anything loads.
#[test]
fn adapter_flag_misuse_is_refused() {
    let work = tempfile::tempdir().expect("tempdir");
    let data = conformance_dir().join("data/e2e_test_public.jsonl");
    let lora_only = path(&fixture("lora_only.pt"));
    let run = |extra: &[&str]| {
        let mut args = strings(&["run", "--device", "cpu", "--work_dir", &path(work.path()), "--data", &path(&data)]);
        args.extend(strings(extra));
        let out = lorabeam(&args);
        assert!(!out.status.success(), "{extra:?} was accepted");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let base = path(&fixture("base_pytorch_model.bin"));
    let twice = run(&[
        "--base_checkpoint",
        &base,
        "--adapter",
        &format!("a={lora_only}"),
        "--adapter",
        &format!("a={lora_only}"),
    ]);
    assert!(twice.contains("`a` is given twice"), "{twice}");
    let no_base = run(&["--adapter", &lora_only]);
    assert!(no_base.contains("--adapter needs --base_checkpoint"), "{no_base}");
    let config = path(&fixture("config.json"));
    let with_adapter = |adapter: &str| {
        let args = ["--base_checkpoint", &base, "--model_config", &config, "--seq_len", "256", "--eval_len", "16"];
        run(&[&args[..], &["--adapter", adapter]].concat())
    };
    let missing = with_adapter("x=/nonexistent");
    assert!(missing.contains("/nonexistent does not exist"), "{missing}");
    // A PEFT adapter's weights file instead of its folder: told to pass the folder.
    let peft = loralib_equivalent();
    let weights = peft.join("adapter_model.safetensors");
    let file = with_adapter(&format!("x={}", path(&weights)));
    let expected = format!("is a PEFT adapter's weights file; pass its folder {}", path(&peft));
    assert!(file.contains(&expected) && !file.contains("base weights"), "{file}");
}
