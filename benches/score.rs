//! Scoring speed: the whole E2E test set (4,693 lines, 630 contexts) through
//! `lorabeam_core::eval` as `lorabeam score --references --hypotheses` runs it, without and
//! with METEOR (when `LORABEAM_METEOR_JAR` names the jar). Each hypothesis is the text of a
//! completion 7 lines further on, so the scores are far from 1. Prints a table of seconds.
//!
//!   cargo bench --bench score

use std::path::Path;
use std::time::Instant;

use lorabeam_core::eval::{e2e_scores, MeteorRunner};

/// The references grouped by context in first-appearance order, as gpt2_decode.py groups them.
fn whole_test_set() -> anyhow::Result<(Vec<Vec<String>>, Vec<String>)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/data/e2e_test_formatted.jsonl");
    let mut rows = Vec::new();
    for line in std::fs::read_to_string(path)?.lines() {
        let value: serde_json::Value = serde_json::from_str(line)?;
        let field = |name: &str| value[name].as_str().map(|s| s.trim().to_string()).unwrap_or_default();
        rows.push((field("context"), field("completion")));
    }
    let mut index: std::collections::HashMap<String, usize> = Default::default();
    let (mut references, mut hypotheses): (Vec<Vec<String>>, Vec<String>) = (Vec::new(), Vec::new());
    for (i, (context, completion)) in rows.iter().enumerate() {
        let group = *index.entry(context.clone()).or_insert_with(|| {
            references.push(Vec::new());
            hypotheses.push(String::new());
            references.len() - 1
        });
        references[group].push(completion.clone());
        hypotheses[group] = rows[(i + 7) % rows.len()].1.clone();
    }
    Ok((references, hypotheses))
}

fn median_seconds(runs: usize, mut once: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        once()?;
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[runs / 2])
}

fn main() -> anyhow::Result<()> {
    let (references, hypotheses) = whole_test_set()?;
    println!("| scoring the whole E2E test set ({} contexts) | median of 5, seconds |", references.len());
    println!("|---|---|");
    let without = median_seconds(5, || Ok(e2e_scores(&references, &hypotheses, None).map(|_| ())?))?;
    println!("| BLEU, NIST, ROUGE-L, CIDEr (no METEOR) | {without:.2} |");
    match MeteorRunner::from_env().filter(|r| r.jar().is_file()) {
        Some(meteor) => {
            let with = median_seconds(5, || Ok(e2e_scores(&references, &hypotheses, Some(&meteor)).map(|_| ())?))?;
            println!("| all five, METEOR through java | {with:.2} |");
        }
        None => println!("| all five | not run: LORABEAM_METEOR_JAR names no jar |"),
    }
    Ok(())
}
