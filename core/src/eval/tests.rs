//! Checks against numbers printed by e2e-metrics' `measure_scores.py -p` (Python 3.11,
//! numpy 2.4, java 17, at tuetschek/e2e-metrics 1b9c4d8) and tokens printed by the
//! CoreNLP 3.4.1 jar. METEOR and jar comparisons run only where `LORABEAM_METEOR_JAR` /
//! `LORABEAM_PTB_JAR` name the jars; otherwise they say they were skipped and why.

use std::path::PathBuf;
use std::time::Instant;

use super::*;

fn conformance_dir() -> PathBuf {
    std::env::var_os("LORABEAM_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/conformance"))
}

fn example_dir() -> PathBuf {
    conformance_dir().join("e2e-metrics-example")
}

fn meteor_runner(what: &str) -> Option<MeteorRunner> {
    let runner = MeteorRunner::from_env();
    match &runner {
        Some(r) if r.jar().is_file() => {}
        Some(r) => println!("METEOR check skipped for {what}: {} is not a file", r.jar().display()),
        None => println!("METEOR check skipped for {what}: {METEOR_JAR_ENV} is not set"),
    }
    runner.filter(|r| r.jar().is_file())
}

/// Expected (BLEU, NIST, METEOR, ROUGE_L, CIDEr) as measure_scores.py printed them.
type Expected = [f64; 5];

fn check(name: &str, refs: &[Vec<String>], hyps: &[String], expected: Expected) {
    let meteor = meteor_runner(name);
    let start = Instant::now();
    let scores = e2e_scores(refs, hyps, meteor.as_ref()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let took = start.elapsed();
    let got = [round4(scores.bleu), round4(scores.nist), f64::NAN, round4(scores.rouge_l), round4(scores.cider)];
    for (i, metric) in ["BLEU", "NIST", "METEOR", "ROUGE_L", "CIDEr"].iter().enumerate() {
        if i == 2 {
            continue;
        }
        assert_eq!(got[i], expected[i], "{name} {metric}: ours {got:?}, measure_scores.py {expected:?}");
    }
    if meteor.is_some() {
        let m = scores.meteor.clone().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(round4(m), expected[2], "{name} METEOR");
    }
    println!("{name} ({took:?}, METEOR {}):\n{scores}", if meteor.is_some() { "run" } else { "not run" });
}

fn check_files(name: &str, refs: &str, hyps: &str, expected: Expected) {
    let (refs, hyps) = read_score_files(&example_dir().join(refs), &example_dir().join(hyps)).expect("score files");
    check(name, &refs, &hyps, expected);
}

#[test]
fn e2e_metrics_own_example() {
    check_files("example", "devel-conc.txt", "baseline-output.txt", [0.7203, 7.7889, 0.4801, 0.7910, 2.3039]);
}

#[test]
fn public_goldens() {
    // readme-f32's predictions are readme-f64's (the reference's f32 run matched its f64 run),
    // so gpt2_decode.py wrote the same files: scored once (METEOR is a JVM run of seconds).
    for file in ["e2e_ref.txt", "e2e_pred.txt"] {
        let read = |golden: &str| std::fs::read(example_dir().join(format!("goldens/{golden}/{file}"))).expect(file);
        assert_eq!(read("readme-f32"), read("readme-f64"), "readme-f32's {file} is readme-f64's");
    }
    let goldens: [(&str, Expected); 4] = [
        ("greedy-f64", [0.1181, 2.3543, 0.1372, 0.3066, 0.2946]),
        ("knobs-f64", [0.1183, 2.5238, 0.1635, 0.2836, 0.3007]),
        ("readme-f64 (and readme-f32)", [0.1226, 1.7698, 0.1476, 0.3160, 0.3032]),
        ("truncate-f64", [0.1210, 1.3775, 0.1449, 0.3111, 0.2906]),
    ];
    for (name, expected) in goldens {
        let dir = name.split_whitespace().next().unwrap_or(name);
        check_files(name, &format!("goldens/{dir}/e2e_ref.txt"), &format!("goldens/{dir}/e2e_pred.txt"), expected);
    }
}

#[test]
fn edge_cases() {
    // An empty hypothesis, a one-reference group, an all-punctuation hypothesis, £ and é,
    // quotes and brackets; then a file with no blank line (single-reference mode).
    check_files("edge multi", "edge/multi_ref.txt", "edge/multi_hyp.txt", [0.1918, 0.5379, 0.1882, 0.2819, 0.9009]);
    check_files("edge single", "edge/single_ref.txt", "edge/single_hyp.txt", [0.3040, 2.9385, 0.3657, 0.5825, 3.3400]);
}

/// The whole E2E test set grouped as gpt2_decode.py groups it (by context, in order of first
/// appearance); each group's hypothesis is the text of the completion 7 lines after the
/// group's last line, as reference_scores.py produced the files measure_scores.py scored.
fn full_test_set(shift: usize) -> (Vec<Vec<String>>, Vec<String>) {
    let path = conformance_dir().join("data/e2e_test_formatted.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rows: Vec<(String, String)> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json line");
            (
                v["context"].as_str().expect("context").to_string(),
                v["completion"].as_str().expect("completion").trim().to_string(),
            )
        })
        .collect();
    let mut order: Vec<&str> = Vec::new();
    let mut groups: std::collections::HashMap<&str, (Vec<String>, String)> = Default::default();
    for (i, (context, completion)) in rows.iter().enumerate() {
        let entry = groups.entry(context).or_insert_with(|| {
            order.push(context);
            (Vec::new(), String::new())
        });
        entry.0.push(completion.clone());
        entry.1 = rows[(i + shift) % rows.len()].1.clone();
    }
    order.iter().map(|c| groups.remove(c).expect("group")).unzip()
}

/// The whole E2E test set (its speed is measured by `cargo bench --bench score`, not here).
#[test]
fn whole_test_set_scores() {
    for (shift, expected) in [(7, [0.3301, 5.6818, 0.3136, 0.4723, 0.9787]), (0, [1.0, 14.156, 1.0, 1.0, 3.4075])] {
        let (refs, hyps) = full_test_set(shift);
        assert_eq!((refs.len(), refs.iter().map(Vec::len).sum::<usize>()), (630, 4693));
        check(&format!("whole test set (shift {shift})"), &refs, &hyps, expected);
    }
}

#[test]
fn scoring_errors_are_typed() {
    let refs = vec![vec!["a b".to_string()], vec![]];
    let hyps = vec!["a".to_string(), "b".to_string()];
    assert!(matches!(e2e_scores(&refs, &hyps, None), Err(EvalError::EmptyReferenceGroup { index: 1 })));
    assert!(matches!(e2e_scores(&refs[..1], &hyps, None), Err(EvalError::LengthMismatch { groups: 1, hypotheses: 2 })));
    assert!(matches!(e2e_scores(&[], &[], None), Err(EvalError::NoInstances)));
    // pymteval divides by the hypotheses' bigram total, 0 here: a ZeroDivisionError there.
    assert!(matches!(e2e_scores(&refs[..1], &hyps[..1], None), Err(EvalError::NistUndefined(_))));
    let hyps = vec!["a b c d e".to_string()];
    let missing = MeteorRunner::new("/nonexistent/meteor-1.5.jar");
    let scores = e2e_scores(&refs[..1], &hyps, Some(&missing)).expect("scores");
    let why = scores.meteor.clone().expect_err("no jar");
    assert!(why.to_string().starts_with("METEOR unavailable: no METEOR jar at /nonexistent"), "{why}");
    let json = scores.to_json();
    assert!(json["METEOR"].is_null() && json["BLEU"].is_number(), "{json}");
    let line = scores.to_json_line();
    assert!(line.starts_with(r#"{"BLEU":"#) && line.contains(r#""METEOR":null,"ROUGE_L":"#), "{line}");
    let parsed: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
    assert_eq!(parsed, json, "the line and the value agree");
    assert!(scores.to_string().contains("METEOR: n/a (METEOR unavailable"));
    let no_java = MeteorRunner::new(example_dir().join("devel-conc.txt")).with_java("/nonexistent/java");
    assert!(no_java.score(&refs[..1], &hyps[..1]).expect_err("no java").reason.contains("cannot start"));
}

/// Lines whose tokens the 3.4.1 jar printed (run over these lines joined in this order).
const TRICKY: [(&str, &str); 19] = [
    ("It's the children's favourite, isn't it? Yes!", "it 's the children 's favourite , is n't it ? yes !"),
    ("They don't, won't, can't and shouldn't. Ain't", "they do n't , wo n't , ca n't and should n't . ai n't"),
    ("The price is £20-£25. OK", "the price is # 20 - # 25 . ok"),
    ("Café Rouge and Café Sicilia near Raja Indian Cuisine", "café rouge and café sicilia near raja indian cuisine"),
    ("He said \"hello\" and 'bye' then \"Go\".", "he said `` hello '' and ` bye ' then `` go '' ."),
    ("Fitzbillies' price", "fitzbillies ' price"),
    (
        "non-family-friendly, kid-friendly--yes - no -- maybe --- ok",
        "non-family-friendly , kid-friendly -- yes - no -- maybe -- ok",
    ),
    ("x.. y.... z. . . w", "x. . y. ... z. . . w"),
    (
        "The Wrestlers' area (riverside) is [good] {ok} <b>bold</b>",
        "the wrestlers ' area -lrb- riverside -rrb- is -lsb- good -rsb- -lcb- ok -rcb- <b> bold </b>",
    ),
    ("#1 $5 US$5 € ¥ ¢ 100%", "# 1 $ 5 us$ 5 $ ¥ cents 100 %"),
    ("5.0 .5 5. 5.. -5 +5 5-", "5.0 .5 5 . 5 . . -5 +5 5 -"),
    ("It is n't family - friendly .", "it is n't family - friendly ."),
    (
        "cannot Cannot CANNOT gonna wanna gotta lemme gimme",
        "can not can not can not gon na wan na got ta lem me gim me",
    ),
    ("naïve résumé façade Zoë", "naïve résumé façade zoë"),
    ("St. Mary's and Mr. Smith in the U.K. The place", "st. mary 's and mr. smith in the u.k. . the place"),
    ("Alimentum's prices are £20-25. They", "alimentum 's prices are # 20-25 . they"),
    ("It is 3.5 km. It", "it is 3.5 km . it"),
    ("Eat at 5.30pm", "eat at 5.30 pm"),
    ("\"Ok,\" he said.", "`` ok , '' he said ."),
];

#[test]
fn ptb_tricky_lines_match_the_jar() {
    let text = TRICKY.iter().map(|(s, _)| *s).collect::<Vec<_>>().join("\n");
    let ours = jar_output(&text);
    for ((src, want), got) in TRICKY.iter().zip(ours.split('\n')) {
        assert_eq!(got, *want, "tokens of {src:?}");
    }
    // Punctuation removal afterwards, as pycocoevalcap does it (`-lrb-` survives).
    assert_eq!(ptb_tokenize(&["(Yes), it's £5 ... ok?"]), ["-lrb- yes -rrb- it 's # 5 ok"]);
    assert_eq!(ptb_tokenize(&["", "."]), ["", ""]);
}

/// Every line this repository has (E2E test completions, e2e-metrics' example, the golden
/// references and predictions), tokenised as pycocoevalcap feeds them, by us and by the jar.
#[test]
fn ptb_matches_the_jar_on_all_repository_text() {
    let Some(jar) = PtbJar::from_env() else {
        println!("PTB jar comparison skipped: {PTB_JAR_ENV} is not set");
        return;
    };
    let mut inputs: Vec<(String, Vec<String>)> = Vec::new();
    let (refs, hyps) = full_test_set(0);
    inputs.push(("e2e_test_formatted completions".into(), refs.concat()));
    inputs.push(("whole-set hypotheses".into(), hyps));
    let mut pairs = vec![("example".to_string(), "devel-conc.txt".to_string(), "baseline-output.txt".to_string())];
    for g in ["greedy-f64", "knobs-f64", "readme-f32", "readme-f64", "truncate-f64"] {
        pairs.push((g.into(), format!("goldens/{g}/e2e_ref.txt"), format!("goldens/{g}/e2e_pred.txt")));
    }
    pairs.push(("edge multi".into(), "edge/multi_ref.txt".into(), "edge/multi_hyp.txt".into()));
    for (name, r, h) in pairs {
        let (refs, hyps) = read_score_files(&example_dir().join(r), &example_dir().join(h)).expect("files");
        inputs.push((format!("{name} references"), refs.concat()));
        inputs.push((format!("{name} hypotheses"), hyps));
    }
    let (mut lines, mut mismatches) = (0, 0);
    for (name, sentences) in &inputs {
        let text = sentences.join("\n");
        let (ours, theirs) = (jar_output(&text), jar.output(&text).expect("jar"));
        for (i, (a, b)) in ours.split('\n').zip(theirs.split('\n')).enumerate() {
            if a != b {
                mismatches += 1;
                println!("{name} line {i}: {:?}\n  ours {a:?}\n  jar  {b:?}", sentences[i]);
            }
        }
        assert_eq!(ours.split('\n').count(), theirs.split('\n').count(), "{name}: line counts");
        lines += sentences.len();
    }
    println!("PTB tokeniser vs CoreNLP 3.4.1 jar: {mismatches} mismatches over {lines} lines");
    assert_eq!(mismatches, 0);
}

/// One runner's JVM serves call after call, each scored as a fresh JVM scores it; a call that
/// could put the kept JVM out of step (a line break in a text) is refused, and the next call
/// starts another JVM and scores right.
#[test]
fn a_kept_meteor_jvm_scores_each_call_as_a_fresh_one() {
    let Some(kept) = meteor_runner("the kept JVM") else { return };
    let refs = |texts: &[&str]| -> Vec<Vec<String>> { texts.iter().map(|t| vec![t.to_string()]).collect() };
    let hyps = |texts: &[&str]| -> Vec<String> { texts.iter().map(|t| t.to_string()).collect() };
    let first = (refs(&["the cat sat on the mat", "a dog ran"]), hyps(&["the cat sat on a mat", "a dog runs"]));
    let second = (refs(&["it is raining today"]), hyps(&["today it rains"]));
    let fresh = |(r, h): &(Vec<Vec<String>>, Vec<String>)| {
        MeteorRunner::new(kept.jar()).score(r, h).expect("a fresh JVM scores")
    };
    let (want_first, want_second) = (fresh(&first), fresh(&second));
    assert_eq!(kept.score(&first.0, &first.1).expect("scores"), want_first);
    assert_eq!(kept.score(&second.0, &second.1).expect("scores again"), want_second);
    assert_eq!(kept.clone().score(&first.0, &first.1).expect("a clone shares it"), want_first);
    let broken = hyps(&["two\nlines"]);
    let err = kept.score(&refs(&["one line"]), &broken).expect_err("a line break is refused");
    assert!(err.to_string().contains("a text holds a line break"), "{err}");
    assert_eq!(kept.score(&second.0, &second.1).expect("a new JVM after the refusal"), want_second);
}
