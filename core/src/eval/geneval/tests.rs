//! The metrics on the committed WebNLG and DART subsets (`tests/conformance/webnlg-dart/`),
//! against what eval.py computed from gpt2_decode.py's files there (final newline removed).

use std::path::PathBuf;

use super::*;

fn subset(path: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/conformance/webnlg-dart")).join(path)
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// gpt2_decode.py's six reference files and its hypothesis file for `case` (`webnlg/all`, …).
pub(super) fn script_files(case: &str) -> (Vec<String>, String) {
    let (task, filter) = case.split_once('/').unwrap_or((case, "all"));
    let dir = format!("{task}/gpt2_decode_{filter}");
    let refs = (0..6).map(|i| read(subset(&format!("{dir}/reference{i}")))).collect();
    (refs, read(subset(&format!("{dir}/hypothesis"))))
}

/// eval.py's unrounded result `metric` for `case`, from expected_scores.json.
pub(super) fn expected(case: &str, metric: &str) -> f64 {
    let (task, filter) = case.split_once('/').unwrap_or((case, "all"));
    let json: serde_json::Value =
        serde_json::from_str(&read(subset(&format!("{task}/expected_scores.json")))).expect("expected scores JSON");
    json[filter]["eval_py_final_newline_stripped"][metric].as_f64().unwrap_or_else(|| panic!("{case} {metric}"))
}

pub(super) const CASES: [&str; 4] = ["webnlg/all", "webnlg/seen", "webnlg/unseen", "dart/all"];

#[test]
fn chrf_matches_eval_py_on_the_subsets() {
    for case in CASES {
        let (refs, hyp) = script_files(case);
        let files = EvalFiles::parse(&refs, &hyp).expect("files");
        assert!(!files.phantom);
        let chrf = corpus_chrf(&files.references, &files.hypotheses, 6);
        assert_eq!(chrf, Some(expected(case, "chrf++")), "{case}");
    }
}

#[test]
fn the_phantom_item_is_kept_only_verbatim() {
    let (refs, hyp) = script_files("dart/all");
    let lorabeam = EvalFiles::parse(&refs, &hyp).expect("files");
    let verbatim = EvalFiles::parse_verbatim(&refs, &hyp).expect("files");
    assert_eq!(lorabeam.len(), 96);
    assert_eq!(verbatim.len(), 97);
    assert!(verbatim.phantom && verbatim.hypotheses[96].is_empty() && verbatim.references[96] == vec![""; 6]);
    assert_eq!(verbatim.perl_items().1.len(), 96, "Perl reads no line after the final newline");
    let mut short = refs.clone();
    short[3] = short[3].replacen('\n', "", 1);
    let err = EvalFiles::parse(&short, &hyp).expect_err("one line fewer");
    assert!(err.to_string().starts_with("reference file 3 has 95 line(s) but the hypothesis file has 96"), "{err}");
}
