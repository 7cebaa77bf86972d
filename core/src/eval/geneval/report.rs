//! How WebNLG and DART scores are shown: lorabeam's table (the paper's rows S, U, A for
//! WebNLG; BLEU with multi-bleu's 2 decimals, the rest to 4 decimals of their unrounded
//! values) and one JSON line with every number unrounded; and eval.py's own table, verbatim.

use std::fmt;

use serde_json::{json, Map, Value};

use super::scores::{GenEvalScores, Unavailable};
use crate::text::{CategoryFilter, PostProcess, ScoreTask};

/// One subset's scores: the whole set, or WebNLG's seen or unseen categories.
#[derive(Debug, Clone, PartialEq)]
pub struct SubsetScores {
    pub filter: CategoryFilter,
    pub scores: GenEvalScores,
}

/// A task's scores, every subset scored, with how the texts were made.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskReport {
    pub task: ScoreTask,
    pub ref_num: usize,
    /// gpt2_decode.py's `--tokenize`/`--lower` when lorabeam wrote the files; `None` for files
    /// given as they are.
    pub post: Option<PostProcess>,
    pub subsets: Vec<SubsetScores>,
}

fn cell(value: &Result<f64, Unavailable>) -> String {
    value.as_ref().map_or_else(|_| "n/a".to_string(), |v| format!("{v:.4}"))
}

impl fmt::Display for TaskReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match self.post {
            Some(post) => {
                let flags: String = [("--tokenize", post.tokenize), ("--lower", post.lower)]
                    .iter()
                    .filter(|(_, on)| *on)
                    .map(|(flag, _)| format!(" {flag}"))
                    .collect();
                format!("gpt2_decode.py --ref_type {} --ref_num {}{flags}, then ", self.task, self.ref_num)
            }
            None => String::new(),
        };
        writeln!(f, "{} SCORES ({source}eval.py -nr {}):", self.task.title().to_uppercase(), self.ref_num)?;
        writeln!(
            f,
            "{:<11}{:>6}{:>8}{:>11}{:>8}{:>8}{:>8}",
            "", "ITEMS", "BLEU", "BLEU_NLTK", "METEOR", "TER", "chrF++"
        )?;
        // Each reason once, with the metrics it concerns.
        let mut notes: Vec<(String, Vec<&str>)> = Vec::new();
        for subset in &self.subsets {
            let s = &subset.scores;
            let bleu = s.bleu.as_ref().map_or_else(|_| "n/a".to_string(), |b| b.printed.clone());
            let label = format!("{} ({})", subset.filter.letter(), subset.filter);
            let (nltk, meteor, ter, chrf) = (cell(&s.bleu_nltk), cell(&s.meteor), cell(&s.ter), cell(&s.chrf));
            writeln!(f, "{label:<11}{:>6}{bleu:>8}{nltk:>11}{meteor:>8}{ter:>8}{chrf:>8}", s.items)?;
            for (name, why) in unavailable(s) {
                match notes.iter_mut().find(|(reason, _)| reason == why) {
                    Some((_, names)) if !names.contains(&name) => names.push(name),
                    Some(_) => {}
                    None => notes.push((why.to_string(), vec![name])),
                }
            }
        }
        for (why, names) in notes {
            writeln!(f, "{}: n/a ({why})", names.join(", "))?;
        }
        Ok(())
    }
}

/// The metrics without a number, with why.
fn unavailable(s: &GenEvalScores) -> Vec<(&'static str, &str)> {
    let mut out = Vec::new();
    if let Err(why) = &s.bleu {
        out.push(("BLEU", why.0.as_str()));
    }
    for (name, value) in [("BLEU_NLTK", &s.bleu_nltk), ("METEOR", &s.meteor), ("TER", &s.ter), ("chrF++", &s.chrf)] {
        if let Err(why) = value {
            out.push((name, why.0.as_str()));
        }
    }
    out
}

fn number(value: &Result<f64, Unavailable>) -> Value {
    value.as_ref().map_or(Value::Null, |v| json!(v))
}

impl GenEvalScores {
    /// Every number unrounded (BLEU also as multi-bleu prints it), `null` where unavailable,
    /// with the reasons under `unavailable`.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("items".into(), json!(self.items));
        out.insert("BLEU".into(), self.bleu.as_ref().map_or(Value::Null, |b| json!(b.value())));
        out.insert("BLEU_unrounded".into(), self.bleu.as_ref().map_or(Value::Null, |b| json!(b.bleu)));
        out.insert("BLEU_NLTK".into(), number(&self.bleu_nltk));
        out.insert("METEOR".into(), number(&self.meteor));
        out.insert("TER".into(), number(&self.ter));
        out.insert("chrF++".into(), number(&self.chrf));
        let reasons: Map<String, Value> =
            unavailable(self).into_iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
        if !reasons.is_empty() {
            out.insert("unavailable".into(), Value::Object(reasons));
        }
        Value::Object(out)
    }
}

impl TaskReport {
    /// One JSON object: the task, how its texts were made, and each subset's numbers.
    pub fn to_json(&self) -> Value {
        let subsets: Map<String, Value> =
            self.subsets.iter().map(|s| (s.filter.name().to_string(), s.scores.to_json())).collect();
        let mut out = json!({ "task": self.task.name(), "ref_num": self.ref_num, "scores": subsets });
        if let Some(post) = self.post {
            out["tokenize"] = json!(post.tokenize);
            out["lower"] = json!(post.lower);
        }
        out
    }
}

/// Python's `format(round(x, 2), "g")`, as tabulate prints eval.py's numbers.
fn py_g_round2(x: f64) -> String {
    let rounded: f64 = format!("{x:.2}").parse().unwrap_or(x);
    if rounded == 0.0 {
        return "0".to_string();
    }
    let exponent: i32 = format!("{rounded:.5e}").split('e').nth(1).and_then(|e| e.parse().ok()).unwrap_or(0);
    let strip = |s: String| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if !(-4..6).contains(&exponent) {
        let text = format!("{rounded:.5e}");
        let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        return format!("{}e{}{:02}", strip(mantissa.to_string()), if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    let decimals = usize::try_from(5 - exponent).unwrap_or(0);
    strip(format!("{rounded:.decimals$}"))
}

/// The table eval.py prints (tabulate's "simple" format, one row): `BLEU` as multi-bleu
/// printed it, the others `round(x, 2)`, -1 where a metric failed, as eval.py shows a failed
/// METEOR or chrF++. Columns: BLEU, BLEU NLTK, METEOR, then chrF++ when `chrf`, then TER.
pub fn eval_py_table(scores: &GenEvalScores, chrf: bool) -> String {
    let failed = || "-1".to_string();
    let value = |v: &Result<f64, Unavailable>| v.as_ref().map_or_else(|_| failed(), |x| py_g_round2(*x));
    let mut columns: Vec<(&str, String)> = vec![
        ("BLEU", scores.bleu.as_ref().map_or_else(|_| failed(), |b| py_g_round2(b.value()))),
        ("BLEU NLTK", value(&scores.bleu_nltk)),
        ("METEOR", value(&scores.meteor)),
    ];
    if chrf {
        columns.push(("chrF++", value(&scores.chrf)));
    }
    columns.push(("TER", value(&scores.ter)));
    let widths: Vec<usize> = columns.iter().map(|(h, v)| (h.chars().count() + 2).max(v.chars().count())).collect();
    let line = |cells: Vec<String>| cells.join("  ");
    let header = line(columns.iter().zip(&widths).map(|((h, _), w)| format!("{h:>w$}")).collect());
    let rule = line(widths.iter().map(|w| "-".repeat(*w)).collect());
    let row = line(columns.iter().zip(&widths).map(|((_, v), w)| format!("{v:>w$}")).collect());
    format!("{header}\n{rule}\n{row}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_as_tabulate_prints_them() {
        for (x, want) in [(31.0, "31"), (0.31002, "0.31"), (-1.0, "-1"), (0.0043, "0"), (100.0, "100"), (1.255, "1.25")]
        {
            assert_eq!(py_g_round2(x), want, "{x}");
        }
        assert_eq!(py_g_round2(12345.678), "12345.7");
    }
}
