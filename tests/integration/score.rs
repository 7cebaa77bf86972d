//! `lorabeam score` and `lorabeam run --score` against what users' own scripts print:
//! microsoft/LoRA's gpt2_decode.py wrote the text files under
//! `tests/conformance/e2e-metrics-example/goldens/`, and e2e-metrics' `measure_scores.py -p`
//! printed the numbers below for them (see that folder's README).

use crate::support;

use std::path::{Path, PathBuf};

use support::*;

/// measure_scores.py -p on gpt2_decode.py's files of each golden: BLEU, NIST, METEOR, ROUGE_L, CIDEr.
const GOLDEN_SCORES: &[(&str, [f64; 5])] = &[
    ("readme-f64", [0.1226, 1.7698, 0.1476, 0.3160, 0.3032]),
    ("readme-f32", [0.1226, 1.7698, 0.1476, 0.3160, 0.3032]),
    ("knobs-f64", [0.1183, 2.5238, 0.1635, 0.2836, 0.3007]),
    ("greedy-f64", [0.1181, 2.3543, 0.1372, 0.3066, 0.2946]),
    ("truncate-f64", [0.1210, 1.3775, 0.1449, 0.3111, 0.2906]),
];

/// measure_scores.py -p on its own example (example-inputs/devel-conc.txt, baseline-output.txt).
const EXAMPLE_SCORES: [f64; 5] = [0.7203, 7.7889, 0.4801, 0.7910, 2.3039];

fn meteor_available() -> bool {
    let available = std::env::var_os("LORABEAM_METEOR_JAR").is_some_and(|jar| Path::new(&jar).is_file());
    if !available {
        eprintln!("METEOR not checked: LORABEAM_METEOR_JAR does not name a jar (scripts/env.sh sets it)");
    }
    available
}

/// The five numbers of `--json`'s last line; METEOR must be a number exactly when the jar is there.
fn json_scores(stdout: &[u8]) -> [Option<f64>; 5] {
    let text = String::from_utf8_lossy(stdout);
    let last = text.lines().last().unwrap_or_default();
    let value: serde_json::Value = serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {last}"));
    ["BLEU", "NIST", "METEOR", "ROUGE_L", "CIDEr"].map(|key| value[key].as_f64())
}

fn assert_scores(got: [Option<f64>; 5], expected: [f64; 5], what: &str) {
    let meteor = meteor_available();
    for (k, (got, want)) in got.iter().zip(expected).enumerate() {
        match got {
            Some(got) => assert_eq!(format!("{got:.4}"), format!("{want:.4}"), "{what}: score {k}"),
            None => assert!(k == 2 && !meteor, "{what}: score {k} missing"),
        }
    }
    assert_eq!(got[2].is_some(), meteor, "{what}: METEOR is a number exactly when its jar is there");
}

/// BLEU, NIST, ROUGE_L and CIDEr, to four places.
fn all_but_meteor(scores: [Option<f64>; 5]) -> [Option<String>; 4] {
    [0, 1, 3, 4].map(|k| scores[k].map(|v| format!("{v:.4}")))
}

fn score(args: &[&str]) -> std::process::Output {
    let mut all = vec!["score"];
    all.extend_from_slice(args);
    lorabeam(&strings(&all))
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn example(name: &str) -> PathBuf {
    conformance_dir().join("e2e-metrics-example").join(name)
}

/// The files written are gpt2_decode.py's byte for byte, and the scores measure_scores.py's.
/// METEOR (a JVM loading its paraphrase table, seconds each) runs for the first golden only:
/// core's `eval::tests::public_goldens` scores these very files, METEOR included.
#[test]
fn every_golden_scores_as_the_scripts_and_writes_their_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = conformance_dir().join("data/e2e_test_public.jsonl");
    for (k, (name, expected)) in GOLDEN_SCORES.iter().enumerate() {
        let golden = conformance_dir().join(format!("golden/{name}.jsonl"));
        let (refs, preds) = (dir.path().join(format!("{name}.ref")), dir.path().join(format!("{name}.pred")));
        let mut args = vec![
            "--data",
            path(&data),
            "--predictions",
            path(&golden),
            "--output_ref_file",
            path(&refs),
            "--output_pred_file",
            path(&preds),
            "--json",
        ];
        if k > 0 {
            args.push("--no-meteor");
        }
        let out = score(&args);
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let got = json_scores(&out.stdout);
        if k == 0 {
            assert_scores(got, *expected, name);
        } else {
            let want = [0, 1, 3, 4].map(|k| Some(format!("{:.4}", expected[k])));
            assert_eq!(all_but_meteor(got), want, "{name}: BLEU, NIST, ROUGE_L, CIDEr");
            assert_eq!(got[2], None, "{name}: --no-meteor gives no METEOR");
        }
        let scripts = example(&format!("goldens/{name}"));
        for (ours, theirs) in [(&refs, "e2e_ref.txt"), (&preds, "e2e_pred.txt")] {
            let ours = std::fs::read(ours).expect("written");
            assert!(ours == std::fs::read(scripts.join(theirs)).expect("gpt2_decode.py's file"), "{name} {theirs}");
        }
    }
}

/// measure_scores.py's own example through `lorabeam score`, as JSON and as the table. METEOR of
/// these files is core's `eval::tests::e2e_metrics_own_example` (METEOR through this command is
/// `every_golden_scores_as_the_scripts_and_writes_their_files`'), so both runs leave it out.
#[test]
fn measure_scores_own_files_and_example() {
    let (refs, hyps) = (example("devel-conc.txt"), example("baseline-output.txt"));
    let out = score(&["--references", path(&refs), "--hypotheses", path(&hyps), "--json", "--no-meteor"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got = json_scores(&out.stdout);
    let want = [0, 1, 3, 4].map(|k| Some(format!("{:.4}", EXAMPLE_SCORES[k])));
    assert_eq!(all_but_meteor(got), want, "e2e-metrics example: BLEU, NIST, ROUGE_L, CIDEr");
    assert_eq!(got[2], None, "--no-meteor gives no METEOR");
    let table = score(&["--references", path(&refs), "--hypotheses", path(&hyps), "--no-meteor"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("BLEU: 0.7203") && text.contains("CIDEr: 2.3039"), "{text}");
    assert!(
        text.contains("METEOR: n/a (METEOR unavailable: left out (--no-meteor))"),
        "never a guessed number: {text}"
    );
}

#[test]
fn a_missing_jar_is_reported_not_guessed() {
    let (refs, hyps) = (example("devel-conc.txt"), example("baseline-output.txt"));
    let args =
        ["--references", path(&refs), "--hypotheses", path(&hyps), "--meteor-jar", "/nonexistent/meteor-1.5.jar"];
    let out = score(&args);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("METEOR: n/a (METEOR unavailable: no METEOR jar at /nonexistent"),
        "{text}"
    );
}

/// Bad predictions and data are refused with the file, the line and what is wrong.
#[test]
fn bad_predictions_and_data_name_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = head(&conformance_dir().join("data/e2e_test_public.jsonl"), 3, dir.path(), "data.jsonl");
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p
    };
    let line = |id: usize| format!("{{\"id\": {id}, \"predict\": [383, 50256]}}\n");
    let cases = [
        ("missing.jsonl", format!("{}{}", line(0), line(2)), "missing.jsonl: no prediction for id 1"),
        (
            "duplicate.jsonl",
            format!("{}{}{}", line(0), line(1), line(1)),
            "duplicate.jsonl:3: id 1 appears again (first on line 2)",
        ),
        (
            "unknown.jsonl",
            format!("{}{}{}{}", line(0), line(1), line(2), line(7)),
            "unknown.jsonl:4: id 7 is not in the data",
        ),
        ("notjson.jsonl", format!("{}oops\n", line(0)), "notjson.jsonl:2: not JSON"),
    ];
    for (name, text, expected) in cases {
        let predictions = write(name, &text);
        let out = score(&["--data", path(&data), "--predictions", path(&predictions), "--no-meteor"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(expected), "{name}: {stderr}");
    }
    let bad_text = write("bad_text.jsonl", "{\"context\": \"name : A\", \"completion\": \"x\"}\nnot json\n");
    let predictions = write("p.jsonl", &format!("{}{}", line(0), line(1)));
    let out = score(&["--data", path(&bad_text), "--predictions", path(&predictions), "--no-meteor"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("bad_text.jsonl:2: not JSON"), "{stderr}");
}

/// `run --score` prints the scores, writes scores.json and gpt2_decode.py's two files beside the
/// output, names the BLEU in its summary, and agrees with `lorabeam score` on its own output.
#[test]
fn run_with_score_reports_what_score_reports_on_its_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = head(&conformance_dir().join("data/e2e_test_formatted.jsonl"), 24, dir.path(), "text.jsonl");
    let mut args = strings(&["--data", path(&text), "--init_checkpoint", path(&fixture("lora_full.pt"))]);
    args.extend(tiny_model_args());
    args.extend(strings(&[
        "--beam",
        "4",
        "--eval_len",
        "32",
        "--seq_len",
        "256",
        "--batch_size",
        "1",
        "--score",
        "--json",
    ]));
    let mut all = strings(&["run", "--device", "cpu", "--threads", "1", "--work_dir", path(dir.path())]);
    all.extend(strings(&["--output_file", "predictions.jsonl"]));
    all.extend(args);
    let out = lorabeam(&all);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("text input, encoded as gpt2_encode.py --add_bos --add_eos"), "{stderr}");
    let ran = json_scores(&out.stdout);
    let bleu = ran[0].expect("BLEU");
    assert!(stderr.contains(&format!("BLEU {bleu:.4} over 9 contexts")), "the summary names the BLEU: {stderr}");
    let saved = std::fs::read(dir.path().join("scores.json")).expect("scores.json");
    assert_eq!(json_scores(&saved), ran);
    let predictions = dir.path().join("predictions.jsonl");
    let (refs, preds) = (dir.path().join("r.txt"), dir.path().join("p.txt"));
    let again = score(&[
        "--data",
        path(&text),
        "--predictions",
        path(&predictions),
        "--output_ref_file",
        path(&refs),
        "--output_pred_file",
        path(&preds),
        "--json",
    ]);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(json_scores(&again.stdout), ran, "run --score and score agree");
    for (ours, beside) in [(&refs, "e2e_ref.txt"), (&preds, "e2e_pred.txt")] {
        assert_eq!(
            std::fs::read(ours).expect("score's file"),
            std::fs::read(dir.path().join(beside)).expect("run's file")
        );
    }
}
