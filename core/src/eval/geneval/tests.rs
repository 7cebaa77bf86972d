//! The metrics on the committed WebNLG and DART subsets (`tests/conformance/webnlg-dart/`),
//! against what eval.py computed from gpt2_decode.py's files there (final newline removed).

use std::path::PathBuf;

use super::*;
use crate::eval::{MeteorRunner, MeteorUnavailable, METEOR_JAR_ENV};

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

/// The runner the tests use: `LORABEAM_METEOR_JAR` when it names a file (METEOR checks are
/// skipped otherwise, as in the E2E tests).
fn meteor() -> Result<MeteorRunner, MeteorUnavailable> {
    match MeteorRunner::from_env() {
        Some(runner) if runner.jar().is_file() => Ok(runner),
        _ => Err(MeteorUnavailable::new(format!("{METEOR_JAR_ENV} is not set to a jar"))),
    }
}

fn no_punkt() -> WordTokenizer {
    WordTokenizer::new(Err(PunktUnavailable("not needed: the text is in --tokenize form".into())))
}

/// Every metric on every subset, from gpt2_decode.py's own files: multi-bleu's printed BLEU,
/// the others equal to eval.py's unrounded numbers (to the last bit: the same arithmetic in
/// the same order), METEOR to its printed digits where the jar is available.
#[test]
fn every_metric_matches_eval_py_on_the_subsets() {
    let meteor = meteor();
    for case in CASES {
        let (refs, hyp) = script_files(case);
        let files = EvalFiles::parse(&refs, &hyp).expect("files");
        let scores = geneval_scores(&files, 6, &no_punkt(), &meteor, true);
        let bleu = scores.bleu.as_ref().expect("BLEU");
        assert_eq!(bleu.value(), expected(case, "bleu"), "{case} BLEU");
        assert_eq!(scores.bleu_nltk, Ok(expected(case, "bleu_nltk")), "{case} BLEU NLTK");
        assert_eq!(scores.ter, Ok(expected(case, "ter")), "{case} TER");
        assert_eq!(scores.chrf, Ok(expected(case, "chrf++")), "{case} chrF++");
        match &meteor {
            Ok(_) => assert_eq!(scores.meteor, Ok(expected(case, "meteor")), "{case} METEOR"),
            Err(why) => println!("METEOR check skipped for {case}: {why}"),
        }
    }
}

/// `--eval-py-verbatim`: the table eval.py printed for the README's command on the files as
/// gpt2_decode.py wrote them (phantom item included: METEOR -1, TER with one more 1.0).
#[test]
fn the_verbatim_table_is_eval_pys() {
    let meteor = meteor();
    for case in CASES {
        let (refs, hyp) = script_files(case);
        let files = EvalFiles::parse_verbatim(&refs, &hyp).expect("files");
        let scores = geneval_scores(&files, 6, &no_punkt(), &meteor, false);
        assert_eq!(scores.meteor, Err(Unavailable(PHANTOM_METEOR.into())), "{case}");
        let (task, filter) = case.split_once('/').unwrap_or((case, "all"));
        let printed = read(subset(&format!("{task}/eval_py_as_is_{filter}.txt")));
        assert_eq!(eval_py_table(&scores, false), printed, "{case}");
        let n = (files.len() - 1) as f64;
        let with_phantom = scores.ter.expect("TER");
        assert!((with_phantom - (expected(case, "ter") * n + 1.0) / (n + 1.0)).abs() < 1e-12, "{case}");
    }
}

/// Opt-in, like the PTB jar check: `LORABEAM_WORD_TOKENIZE_CASES` names a JSONL of
/// `{"text", "tokens", "sentences"}` that nltk 3.5's `word_tokenize` and `sent_tokenize` gave,
/// and the English Punkt model must be found (`LORABEAM_PUNKT`, `NLTK_DATA`, ...): every line
/// must split and tokenize the same.
#[test]
fn word_tokenize_matches_nltk_on_given_cases() {
    let Some(path) = std::env::var_os("LORABEAM_WORD_TOKENIZE_CASES") else {
        println!("word_tokenize check skipped: LORABEAM_WORD_TOKENIZE_CASES is not set");
        return;
    };
    let params = PunktParams::locate(None).expect("the Punkt model, for LORABEAM_WORD_TOKENIZE_CASES");
    let text = std::fs::read_to_string(&path).expect("cases file");
    let tokenizer = WordTokenizer::new(Ok(params.clone()));
    let (mut lines, mut differ) = (0, Vec::new());
    for line in text.lines() {
        let case: serde_json::Value = serde_json::from_str(line).expect("JSON case");
        let text = case["text"].as_str().expect("text");
        let want: Vec<String> = serde_json::from_value(case["tokens"].clone()).expect("tokens");
        let sentences: Vec<String> = serde_json::from_value(case["sentences"].clone()).expect("sentences");
        let got_sentences = super::punkt::sentences(text, &params);
        let got = tokenizer.tokenize(text).expect("tokens");
        lines += 1;
        if got != want || got_sentences != sentences {
            differ.push(format!("{text:?}\n  nltk  {sentences:?} {want:?}\n  ours  {got_sentences:?} {got:?}"));
        }
    }
    assert!(differ.is_empty(), "{} of {lines} differ:\n{}", differ.len(), differ[..differ.len().min(10)].join("\n"));
    println!("word_tokenize: {lines} lines, all as nltk's");
}

/// A text holding `|||` cannot go through METEOR's `-stdio` protocol: such a call runs
/// eval.py's own file command, which gives what the kept JVM gives for the others.
#[test]
fn meteor_runs_eval_pys_file_command_for_what_stdio_cannot_carry() {
    let Ok(runner) = meteor() else {
        println!("METEOR check skipped: {METEOR_JAR_ENV} is not set to a jar");
        return;
    };
    let (refs, hyp) = script_files("webnlg/unseen");
    let files = EvalFiles::parse(&refs, &hyp).expect("files");
    let tok = |t: &String| no_punkt().joined(t).expect("split form");
    let refs: Vec<Vec<String>> = files.references.iter().map(|r| r.iter().map(tok).collect()).collect();
    let hyps: Vec<String> = files.hypotheses.iter().map(tok).collect();
    let by_files = crate::eval::meteor_files::score_with_files(&runner, &refs, &hyps);
    assert_eq!(by_files, Ok(expected("webnlg/unseen", "meteor")));
    let mut piped = hyps.clone();
    piped[0] = "a ||| b".to_string();
    let score = runner.score_references(&refs, &piped).expect("scored through files");
    assert!(score > 0.0 && score != expected("webnlg/unseen", "meteor"), "{score}");
}
