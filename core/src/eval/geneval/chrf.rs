//! chrF++ as eval.py computes it with GenerationEval's `metrics/chrF.py` (Maja Popović's
//! chrF, character 6-grams and word 2-grams, beta 2): on the untokenised texts, items whose
//! references are all blank dropped, blank references dropped, the rest joined with `*#` per
//! item and read back through temporary files (so lines split as Python's `splitlines` does,
//! and `*#` inside a text splits it). Per item the reference with the best sentence F is kept,
//! its n-gram counts summed over the corpus, and the corpus F is the mean over all 8 orders of
//! the per-order F. Sentence scores average only the orders with at least one match, as the
//! script's dictionaries hold only those.

use std::collections::HashMap;

use super::super::pystr::{py_lines, py_split, py_strip};

const WORD_ORDER: usize = 2;
const CHAR_ORDER: usize = 6;
const BETA: f64 = 2.0;

/// `c in string.punctuation`.
fn is_ascii_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
}

/// Python's `sum()` of floats: left to right from 0 (Rust's `Sum` starts from -0.0).
fn py_sum(values: impl Iterator<Item = f64>) -> f64 {
    values.fold(0.0, |total, x| total + x)
}

/// chrF.py's `separate_characters`: the characters of the stripped line without its spaces
/// (only U+0020: tabs and other blanks stay characters).
fn characters(line: &str) -> Vec<String> {
    py_strip(line).chars().filter(|&c| c != ' ').map(String::from).collect()
}

/// chrF.py's `separate_punctuation`: whitespace-split words, one trailing (else leading) ASCII
/// punctuation mark split off a word longer than one character.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    for word in py_split(py_strip(line)) {
        let mut chars = word.chars();
        match (chars.next(), chars.next_back()) {
            (Some(_), Some(last)) if is_ascii_punctuation(last) => {
                out.push(word[..word.len() - last.len_utf8()].to_string());
                out.push(last.to_string());
            }
            (Some(first), Some(_)) if is_ascii_punctuation(first) => {
                out.push(first.to_string());
                out.push(word[first.len_utf8()..].to_string());
            }
            _ => out.push(word.to_string()),
        }
    }
    out
}

/// N-gram counts per order (index `n - 1`); an order is present only when the text has at
/// least `n` units, as the script's defaultdict gets a key only on its first n-gram.
fn ngram_counts(units: &[String], max_order: usize) -> Vec<HashMap<&[String], f64>> {
    let orders = units.len().min(max_order);
    (1..=orders)
        .map(|n| {
            let mut counts: HashMap<&[String], f64> = HashMap::new();
            for gram in units.windows(n) {
                *counts.entry(gram).or_insert(0.0) += 1.0;
            }
            counts
        })
        .collect()
}

/// Per order present in the reference: matches (present only where there was one), reference
/// and hypothesis totals.
#[derive(Default, Clone)]
struct OrderStats {
    matching: Option<f64>,
    reference: f64,
    hypothesis: f64,
}

fn ngram_matches(reference: &[HashMap<&[String], f64>], hypothesis: &[HashMap<&[String], f64>]) -> Vec<OrderStats> {
    reference
        .iter()
        .enumerate()
        .map(|(order, ref_counts)| {
            let hyp_counts = hypothesis.get(order);
            let mut stats = OrderStats {
                hypothesis: hyp_counts.map_or(0.0, |h| py_sum(h.values().copied())),
                ..OrderStats::default()
            };
            for (gram, &count) in ref_counts {
                stats.reference += count;
                if let Some(&hyp) = hyp_counts.and_then(|h| h.get(gram)) {
                    *stats.matching.get_or_insert(0.0) += count.min(hyp);
                }
            }
            stats
        })
        .collect()
}

/// chrF.py's `ngram_precrecf` for one order: (F, recall, precision).
fn prec_rec_f(matching: f64, reference: f64, hypothesis: f64) -> (f64, f64, f64) {
    let factor = BETA * BETA;
    let precision = if hypothesis > 0.0 { matching / hypothesis } else { 1e-16 };
    let recall = if reference > 0.0 { matching / reference } else { 1e-16 };
    let denominator = factor * precision + recall;
    let f = if denominator > 0.0 { (1.0 + factor) * precision * recall / denominator } else { 1e-16 };
    (f, recall, precision)
}

/// A sentence's F over one reference: the F of the orders with a match, summed in order, over
/// the 8 orders.
fn sentence_f(chars: &[OrderStats], words: &[OrderStats]) -> f64 {
    let sum = |stats: &[OrderStats]| -> f64 {
        py_sum(stats.iter().filter_map(|s| s.matching.map(|m| prec_rec_f(m, s.reference, s.hypothesis).0)))
    };
    (sum(chars) + sum(words)) / (WORD_ORDER + CHAR_ORDER) as f64
}

/// Corpus counts per order, summed over items.
struct Totals {
    chars: Vec<(f64, f64, f64)>,
    words: Vec<(f64, f64, f64)>,
}

impl Totals {
    fn add(totals: &mut [(f64, f64, f64)], best: &[OrderStats]) {
        for (order, total) in totals.iter_mut().enumerate() {
            let stats = best.get(order).cloned().unwrap_or_default();
            total.0 += stats.matching.unwrap_or(0.0);
            total.1 += stats.reference;
            total.2 += stats.hypothesis;
        }
    }

    fn f(&self) -> f64 {
        let sum = |totals: &[(f64, f64, f64)]| -> f64 { py_sum(totals.iter().map(|&(m, r, h)| prec_rec_f(m, r, h).0)) };
        (sum(&self.chars) + sum(&self.words)) / (WORD_ORDER + CHAR_ORDER) as f64
    }
}

/// chrF.py's `computeChrF` over the two files' lines, zipped (the shorter ends it).
fn compute_chrf(reference_lines: &[&str], hypothesis_lines: &[&str]) -> Option<f64> {
    let mut totals = Totals { chars: vec![(0.0, 0.0, 0.0); CHAR_ORDER], words: vec![(0.0, 0.0, 0.0); WORD_ORDER] };
    let mut sentences = 0usize;
    for (hline, rline) in hypothesis_lines.iter().zip(reference_lines) {
        sentences += 1;
        let (hyp_words, hyp_chars) = (words(hline), characters(hline));
        let (hyp_word_counts, hyp_char_counts) =
            (ngram_counts(&hyp_words, WORD_ORDER), ngram_counts(&hyp_chars, CHAR_ORDER));
        let mut best: Option<(f64, Vec<OrderStats>, Vec<OrderStats>)> = None;
        for reference in rline.split("*#") {
            let (ref_words, ref_chars) = (words(reference), characters(reference));
            let word_stats = ngram_matches(&ngram_counts(&ref_words, WORD_ORDER), &hyp_word_counts);
            let char_stats = ngram_matches(&ngram_counts(&ref_chars, CHAR_ORDER), &hyp_char_counts);
            let f = sentence_f(&char_stats, &word_stats);
            if best.as_ref().is_none_or(|(best_f, _, _)| f > *best_f) {
                best = Some((f, char_stats, word_stats));
            }
        }
        if let Some((_, chars, words)) = best {
            Totals::add(&mut totals.chars, &chars);
            Totals::add(&mut totals.words, &words);
        }
    }
    (sentences > 0).then(|| totals.f())
}

/// eval.py's `chrF_score` (its `totalF`, a fraction): the untokenised references (the first
/// `num_refs` non-blank ones of each item) and hypotheses. `None` when no item has a
/// non-blank reference (chrF.py divides by zero and eval.py reports -1).
pub fn corpus_chrf(references: &[Vec<String>], hypotheses: &[String], num_refs: usize) -> Option<f64> {
    let mut hyp_file = Vec::new();
    let mut ref_file = Vec::new();
    for (refs, hyp) in references.iter().zip(hypotheses) {
        let kept: Vec<&str> = refs.iter().map(String::as_str).filter(|r| !py_strip(r).is_empty()).collect();
        if !kept.is_empty() {
            hyp_file.push(hyp.as_str());
            ref_file.push(kept.iter().take(num_refs).copied().collect::<Vec<_>>().join("*#"));
        }
    }
    let (hyp_text, ref_text) = (hyp_file.join("\n"), ref_file.join("\n"));
    compute_chrf(&py_lines(&ref_text), &py_lines(&hyp_text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cases() -> (Vec<Vec<String>>, Vec<String>) {
        let cases: [(&[&str], &str); 6] = [
            (&["the cat sat on the mat .", "a cat is on the mat"], "the cat is on a mat."),
            (
                &["Abilene, Texas is served by the Abilene regional airport.", ""],
                "Abilene Regional Airport serves Abilene, Texas!",
            ),
            (&["x", "y"], ""),
            (&["(quoted) word", "tab\there"], "\"quoted\" words tab\there"),
            (&["", " "], "dropped"),
            (&["é café – naïve", "a*#b"], "cafe naive b"),
        ];
        let refs = cases.iter().map(|(r, _)| r.iter().map(|s| s.to_string()).collect()).collect();
        (refs, cases.iter().map(|(_, h)| h.to_string()).collect())
    }

    /// Expected: eval.py's `chrF_score(...)[0]` (GenerationEval 8067849, Python 3.11), the repr
    /// of the float; `None` where it reports -1.
    #[test]
    fn matches_eval_pys_chrf() {
        let (refs, hyps) = cases();
        let expected = [
            Some(0.5672838588731932),
            Some(0.49657526131529306),
            None,
            Some(0.6719323080313949),
            None,
            Some(0.1462434721363293),
        ];
        for (i, want) in expected.iter().enumerate() {
            assert_eq!(corpus_chrf(&refs[i..=i], &hyps[i..=i], 2), *want, "case {i}");
        }
        assert_eq!(corpus_chrf(&refs, &hyps, 2), Some(0.4904355429252817));
        assert_eq!(corpus_chrf(&refs, &hyps, 1), Some(0.4212560839945426));
    }
}
