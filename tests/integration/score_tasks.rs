//! `lorabeam score --task webnlg|dart` against what users' own scripts print: microsoft/LoRA's
//! gpt2_decode.py wrote the files under `tests/conformance/webnlg-dart/*/gpt2_decode_*/` from the
//! committed subsets and predictions, and WebNLG/GenerationEval's eval.py computed
//! `expected_scores.json` and printed `eval_py_as_is_*.txt` from them (see that folder's README).

use crate::support;

use std::path::{Path, PathBuf};

use support::*;

fn subset(path: &str) -> PathBuf {
    conformance_dir().join("webnlg-dart").join(path)
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn meteor_available() -> bool {
    let available = std::env::var_os("LORABEAM_METEOR_JAR").is_some_and(|jar| Path::new(&jar).is_file());
    if !available {
        eprintln!("METEOR not checked: LORABEAM_METEOR_JAR does not name a jar (scripts/env.sh sets it)");
    }
    available
}

fn score_ok(args: &[&str]) -> String {
    let mut all = vec!["score"];
    all.extend_from_slice(args);
    let out = lorabeam(&strings(&all));
    assert!(out.status.success(), "score {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn last_json(stdout: &str) -> serde_json::Value {
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {last}"))
}

fn expected(task: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(subset(&format!("{task}/expected_scores.json"))).expect("expected scores");
    serde_json::from_str(&text).expect("JSON")
}

/// Each subset's numbers equal eval.py's unrounded ones (BLEU: the 2 decimals it prints);
/// METEOR where `meteor` says it ran.
fn assert_subset(got: &serde_json::Value, want: &serde_json::Value, meteor: bool, what: &str) {
    let want = &want["eval_py_final_newline_stripped"];
    for (ours, theirs) in [("BLEU", "bleu"), ("BLEU_NLTK", "bleu_nltk"), ("TER", "ter"), ("chrF++", "chrf++")] {
        assert_eq!(got[ours].as_f64(), want[theirs].as_f64(), "{what} {ours}");
    }
    match meteor {
        true => assert_eq!(got["METEOR"].as_f64(), want["meteor"].as_f64(), "{what} METEOR"),
        false => assert!(got["METEOR"].is_null(), "{what}: METEOR without its jar"),
    }
}

/// WebNLG's S, U and A rows from one call, the files of `--filter` byte for byte as
/// gpt2_decode.py's, and every number as eval.py's; METEOR (a JVM, seconds) in this test only.
#[test]
fn webnlg_scores_as_eval_py_and_writes_gpt2_decodes_files() {
    let meteor = meteor_available();
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, predictions) = (subset("webnlg/test_formatted.jsonl"), subset("webnlg/predictions.jsonl"));
    let (refs, hyp) = (dir.path().join("references_webnlg"), dir.path().join("hypothesis_webnlg"));
    let mut args = vec!["--task", "webnlg", "--data", path(&data), "--predictions", path(&predictions), "--json"];
    args.extend(["--output_ref_file", path(&refs), "--output_pred_file", path(&hyp)]);
    if !meteor {
        args.push("--no-meteor");
    }
    let got = last_json(&score_ok(&args));
    assert_eq!(got["ref_num"], 6);
    assert!(got["tokenize"] == true && got["lower"] == true, "the README's --tokenize --lower: {got}");
    let want = expected("webnlg");
    for filter in ["seen", "unseen", "all"] {
        assert_eq!(got["scores"][filter]["items"], want[filter]["items"], "{filter}");
        assert_subset(&got["scores"][filter], &want[filter], meteor, filter);
    }
    let script = subset("webnlg/gpt2_decode_all");
    for name in ["reference0", "reference1", "reference2", "reference3", "reference4", "reference5"] {
        assert!(std::fs::read(refs.join(name)).ok() == std::fs::read(script.join(name)).ok(), "{name} differs");
    }
    assert!(std::fs::read(&hyp).ok() == std::fs::read(script.join("hypothesis")).ok(), "hypothesis differs");
}

#[test]
fn dart_and_eval_pys_own_files_score_as_eval_py() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (data, predictions) = (subset("dart/test_formatted.jsonl"), subset("dart/predictions.jsonl"));
    let refs = dir.path().join("references_dart");
    let mut args = vec!["--task", "dart", "--data", path(&data), "--predictions", path(&predictions)];
    args.extend(["--json", "--no-meteor", "--output_ref_file", path(&refs)]);
    let got = last_json(&score_ok(&args));
    let want = expected("dart");
    assert_eq!(got["scores"].as_object().map(|o| o.len()), Some(1), "DART has one row: {got}");
    assert_subset(&got["scores"]["all"], &want["all"], false, "dart");
    let script = subset("dart/gpt2_decode_all");
    assert!(std::fs::read(refs.join("reference5")).ok() == std::fs::read(script.join("reference5")).ok());
    // eval.py's -R and -H, on gpt2_decode.py's own files: the folder, or the prefix.
    let hyp = script.join("hypothesis");
    for references in [script.clone(), script.join("reference")] {
        let args = ["--task", "dart", "--references", path(&references), "--hypotheses", path(&hyp)];
        let got = last_json(&score_ok(&[&args[..], &["--json", "--no-meteor"]].concat()));
        assert_subset(&got["scores"]["all"], &want["all"], false, "dart files");
    }
}

/// The references themselves and a shuffled set, per data set and filter, and the edge cases
/// (an empty prediction, a context whose references are all empty, 1 and 35 references, an
/// empty prediction scored last: eval.py's METEOR fails on it and Perl does not read it), each
/// number as eval.py's (`make_cases.py` made them).
#[test]
fn every_prediction_set_scores_as_eval_py() {
    let meteor = meteor_available();
    let mut cases: Vec<(&str, String, String, serde_json::Value)> = Vec::new();
    for task in ["webnlg", "dart"] {
        let text = std::fs::read_to_string(subset(&format!("{task}/expected_scores_refs_shuf.json"))).expect("scores");
        let want: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        for case in ["refs", "shuf"] {
            let data = format!("{task}/test_formatted.jsonl");
            cases.push((task, data, format!("{task}/predictions_{case}.jsonl"), want[case].clone()));
        }
    }
    let want = expected("edge");
    for (case, file) in [("mixed", "predictions"), ("last_empty", "predictions_last_empty")] {
        let (data, predictions) = ("edge/test_formatted.jsonl".into(), format!("edge/{file}.jsonl"));
        cases.push(("dart", data, predictions, want[case].clone()));
    }
    for (task, data, predictions, want) in cases {
        let (data, predictions) = (subset(&data), subset(&predictions));
        let mut args = vec!["--task", task, "--data", path(&data), "--predictions", path(&predictions), "--json"];
        if !meteor {
            args.push("--no-meteor");
        }
        let got = last_json(&score_ok(&args));
        let filters = want.as_object().expect("filters");
        assert_eq!(got["scores"].as_object().map(|o| o.len()), Some(filters.len()), "{got}");
        for (filter, want) in filters {
            let what = format!("{} {filter}", predictions.display());
            assert_eq!(got["scores"][filter]["items"], want["items"], "{what}");
            let failed = want["eval_py_final_newline_stripped"]["meteor"] == -1.0;
            assert_subset(&got["scores"][filter], want, meteor && !failed, &what);
            if failed {
                let why = got["scores"][filter]["unavailable"]["METEOR"].as_str().unwrap_or_default();
                assert!(why.contains("test and reference not same length"), "{what}: {got}");
            }
        }
    }
}

/// `--eval-py-verbatim` prints eval.py's table for the README's command (the phantom item of
/// the files' final newline: METEOR -1, TER over one more item).
#[test]
fn eval_py_verbatim_prints_its_table() {
    let (data, predictions) = (subset("webnlg/test_formatted.jsonl"), subset("webnlg/predictions.jsonl"));
    let base = ["--task", "webnlg", "--data", path(&data), "--predictions", path(&predictions), "--eval-py-verbatim"];
    let seen = score_ok(&[&base[..], &["--filter", "seen"]].concat());
    let printed = |f: &str| std::fs::read_to_string(subset(&format!("webnlg/eval_py_as_is_{f}.txt"))).expect("table");
    assert_eq!(seen, printed("seen"));
    let all = score_ok(&base);
    assert_eq!(
        all,
        format!("S (seen):\n{}U (unseen):\n{}A (all):\n{}", printed("seen"), printed("unseen"), printed("all"))
    );
}

#[test]
fn what_cannot_be_scored_is_refused_by_name() {
    let data = subset("dart/test_formatted.jsonl");
    let predictions = subset("dart/predictions.jsonl");
    let base = ["score", "--data", path(&data), "--predictions", path(&predictions), "--no-meteor"];
    let out = lorabeam(&strings(&[&base[..], &["--task", "dart", "--filter", "seen"]].concat()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("--filter seen is for --task webnlg"), "{stderr}");
    // Lines without `cate` (DART's, or any ids-form file) cannot be filtered by category.
    let out = lorabeam(&strings(&[&base[..], &["--task", "webnlg", "--filter", "unseen"]].concat()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("line 1 has no `cate` field"), "{stderr}");
    let out = lorabeam(&strings(&[&base[..], &["--task", "e2e", "--eval-py-verbatim"]].concat()));
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--eval-py-verbatim is for"));
}

/// `run --score --task webnlg`, one adapter and the bare base in one batch: the table shows the
/// paper's columns per variant, and each variant's scores.json and gpt2_decode.py files are
/// what `lorabeam score --task webnlg` makes of its predictions (40 seen lines: no U row).
#[test]
fn run_with_score_task_reports_what_score_reports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = head(&subset("webnlg/test_formatted.jsonl"), 40, dir.path(), "webnlg.jsonl");
    let work = dir.path().join("work");
    let mut args = strings(&["run", "--device", "cpu", "--threads", "1", "--work_dir", path(&work)]);
    // From a pipe: the records and their categories come from one read.
    args.extend(strings(&["--data", "/dev/stdin", "--output_file", "predictions.jsonl", "--beam", "2"]));
    args.extend(strings(&["--eval_len", "16", "--seq_len", "128", "--batch_size", "1"]));
    args.extend(strings(&["--model_config", path(&fixture("config.json")), "--lora_alpha", "32"]));
    args.extend(strings(&["--base_checkpoint", path(&fixture("base_pytorch_model.bin"))]));
    args.extend(strings(&["--adapter", &format!("lora={}", path(&fixture("lora_only.pt"))), "--include_base"]));
    args.extend(strings(&["--score", "--task", "webnlg", "--no-meteor"]));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lorabeam"))
        .args(&args)
        .stdin(std::fs::File::open(&data).expect("the data"))
        .output()
        .expect("lorabeam runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let header = stdout.lines().next().unwrap_or_default();
    assert!(header.contains("BLEU") && header.contains("METEOR") && header.contains("TER"), "{stdout}");
    assert!(header.contains("BLEU-S") && header.contains("TER-A"), "{stdout}");
    assert!(!header.contains("NIST") && !header.contains("BLEU-U"), "the task's columns, no unseen line: {stdout}");
    for name in ["lora", "base"] {
        let row = stdout.lines().find(|l| l.split_whitespace().next() == Some(name)).unwrap_or_default();
        assert_eq!(row.split_whitespace().count(), 4 + 6, "{name}: lines, tokens, seconds, 6 scores: {stdout}");
        let variant = work.join(name);
        let saved: serde_json::Value =
            serde_json::from_slice(&std::fs::read(variant.join("scores.json")).expect("scores.json")).expect("JSON");
        let predictions = variant.join("predictions.jsonl");
        let hyp = dir.path().join(format!("{name}.hyp"));
        let args = ["--task", "webnlg", "--data", path(&data), "--predictions", path(&predictions)];
        let mut again =
            last_json(&score_ok(&[&args[..], &["--json", "--no-meteor", "--output_pred_file", path(&hyp)]].concat()));
        again.as_object_mut().map(|o| o.remove("eval_py_verbatim"));
        assert_eq!(saved, again, "{name}: run --score and score agree");
        assert_eq!(saved["scores"].as_object().map(|o| o.len()), Some(2), "S and A: {saved}");
        let written = std::fs::read(variant.join("hypothesis_webnlg")).expect("hypothesis_webnlg");
        assert!(written == std::fs::read(&hyp).expect("hyp"), "{name}: the hypothesis file");
        assert!(variant.join("references_webnlg/reference5").is_file());
    }
}
