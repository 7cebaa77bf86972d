//! The paper's columns of a WebNLG or DART report (BLEU, METEOR and TER; for WebNLG each of
//! them per seen, unseen and all subset), read from the report's JSON, for the tables of
//! `run --adapter` and `sweep`.

use lorabeam_core::text::CategoryFilter;
use serde_json::Value;

/// The paper's metrics, with the JSON key and the decimals shown (BLEU as multi-bleu prints it).
const METRICS: [(&str, usize); 3] = [("BLEU", 2), ("METEOR", 4), ("TER", 4)];

/// `(header, cell)` pairs in the paper's order: BLEU-S, BLEU-U, BLEU-A, METEOR-S, … when the
/// report has several subsets, else BLEU, METEOR, TER. A number the report lacks shows `n/a`.
pub fn paper_columns(report: &Value) -> Vec<(String, String)> {
    let subsets: Vec<CategoryFilter> =
        CategoryFilter::PAPER_ORDER.into_iter().filter(|f| report["scores"].get(f.name()).is_some()).collect();
    let mut columns = Vec::with_capacity(METRICS.len() * subsets.len());
    for (metric, decimals) in METRICS {
        for filter in &subsets {
            let header = match subsets.len() {
                1 => metric.to_string(),
                _ => format!("{metric}-{}", filter.letter()),
            };
            let value = report["scores"][filter.name()][metric].as_f64();
            columns.push((header, value.map_or_else(|| "n/a".to_string(), |v| format!("{v:.decimals$}"))));
        }
    }
    columns
}

/// The headers of a table of several reports (those of the one with the most columns); a row
/// without a report shows `n/a` under them.
pub fn paper_headers(reports: &[Option<&Value>]) -> Vec<String> {
    reports
        .iter()
        .flatten()
        .map(|r| paper_columns(r))
        .max_by_key(Vec::len)
        .unwrap_or_default()
        .into_iter()
        .map(|(h, _)| h)
        .collect()
}

/// A task's report from its JSON as `lorabeam score --task` prints it: one JSON line, or the
/// table of its rows (BLEU as multi-bleu prints it, the others to 4 decimals, `n/a` with the
/// reason below the table).
pub fn print_report_json(report_json: &str, json: bool) {
    if json {
        crate::outln!("{report_json}");
        return;
    }
    match serde_json::from_str::<Value>(report_json) {
        Ok(report) => super::term::out_text(&report_table(&report)),
        Err(e) => crate::errln!(
            "the job's report is not JSON ({e}): {}",
            lorabeam_core::quote::escape_controls(report_json, false)
        ),
    }
}

fn report_table(report: &Value) -> String {
    let task = report["task"].as_str().unwrap_or_default();
    let ref_num = report["ref_num"].as_u64().unwrap_or_default();
    let mut out = format!(
        "{} SCORES (gpt2_decode.py --ref_type {task} --ref_num {ref_num} --tokenize --lower, then eval.py -nr {ref_num}):\n",
        task.to_uppercase()
    );
    out.push_str(&format!(
        "{:<11}{:>6}{:>8}{:>11}{:>8}{:>8}{:>8}\n",
        "", "ITEMS", "BLEU", "BLEU_NLTK", "METEOR", "TER", "chrF++"
    ));
    let mut notes: Vec<String> = Vec::new();
    for filter in CategoryFilter::PAPER_ORDER {
        let row = &report["scores"][filter.name()];
        if row.is_null() {
            continue;
        }
        let cell = |key: &str, decimals: usize| {
            row[key].as_f64().map_or_else(|| "n/a".to_string(), |v| format!("{v:.decimals$}"))
        };
        let label = format!("{} ({filter})", filter.letter());
        let items = row["items"].as_u64().unwrap_or_default();
        out.push_str(&format!(
            "{label:<11}{items:>6}{:>8}{:>11}{:>8}{:>8}{:>8}\n",
            cell("BLEU", 2),
            cell("BLEU_NLTK", 4),
            cell("METEOR", 4),
            cell("TER", 4),
            cell("chrF++", 4)
        ));
        for (metric, why) in row["unavailable"].as_object().into_iter().flatten() {
            let note = format!("{metric}: n/a ({})", why.as_str().unwrap_or_default());
            if !notes.contains(&note) {
                notes.push(note);
            }
        }
    }
    for note in notes {
        out.push_str(&note);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn webnlg_has_three_subsets_per_metric_and_dart_one() {
        let subset = |b: f64| json!({"BLEU": b, "METEOR": 0.25, "TER": null});
        let webnlg = json!({"scores": {"all": subset(30.0), "seen": subset(40.5), "unseen": subset(20.0)}});
        let columns = paper_columns(&webnlg);
        let headers: Vec<&str> = columns.iter().map(|(h, _)| h.as_str()).collect();
        assert_eq!(
            headers,
            ["BLEU-S", "BLEU-U", "BLEU-A", "METEOR-S", "METEOR-U", "METEOR-A", "TER-S", "TER-U", "TER-A"]
        );
        assert_eq!(columns[0].1, "40.50");
        assert_eq!(columns[3].1, "0.2500");
        assert_eq!(columns[8].1, "n/a");
        let dart = json!({"scores": {"all": subset(12.34)}});
        let columns = paper_columns(&dart);
        assert_eq!(columns.iter().map(|(h, _)| h.as_str()).collect::<Vec<_>>(), ["BLEU", "METEOR", "TER"]);
        assert_eq!(paper_headers(&[None, Some(&dart), Some(&webnlg)]).len(), 9);
        let dart = json!({"task": "dart", "ref_num": 6, "scores": {"all": {
            "items": 96, "BLEU": 42.45, "BLEU_NLTK": 0.424496, "METEOR": null, "TER": 0.625397, "chrF++": 0.56932,
            "unavailable": {"METEOR": "left out (--no-meteor)"}}}});
        let table = report_table(&dart);
        assert!(
            table.starts_with("DART SCORES (gpt2_decode.py --ref_type dart --ref_num 6 --tokenize --lower"),
            "{table}"
        );
        assert!(table.contains("A (all)        96   42.45     0.4245     n/a  0.6254  0.5693\n"), "{table}");
        assert!(table.ends_with("METEOR: n/a (left out (--no-meteor))\n"), "{table}");
    }
}
