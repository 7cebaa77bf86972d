//! Corpus NIST-5 as e2e-metrics' pymteval `NISTScore` computes it: each matched n-gram
//! weighted by its information in the references of the whole corpus, divided by the
//! hypothesis n-gram totals, times NIST's length penalty against the average reference
//! length.

use std::collections::HashMap;

use super::error::{EvalError, Result};
use super::mteval::{lowercase_tokens, mteval_tokenize};
use super::ngrams::{max_ref_counts, NgramCounts};

const MAX_NGRAM: usize = 5;

/// Corpus NIST of `hypotheses` against `references` (one non-empty group per hypothesis).
///
/// Fails where pymteval divides by zero: an n-gram order whose hypothesis totals sum to 0.
pub fn corpus_nist(references: &[Vec<String>], hypotheses: &[String]) -> Result<f64> {
    let hyps: Vec<Vec<String>> = hypotheses.iter().map(|h| lowercase_tokens(&mteval_tokenize(h))).collect();
    let refs: Vec<Vec<Vec<String>>> =
        references.iter().map(|g| g.iter().map(|r| lowercase_tokens(&mteval_tokenize(r))).collect()).collect();

    // Reference n-gram totals over the corpus (every reference counts, no clipping); the
    // 0-gram total is the number of reference words.
    let mut ref_counts: Vec<HashMap<&[String], usize>> = vec![HashMap::new(); MAX_NGRAM + 1];
    let mut ref_words = 0usize;
    let mut avg_ref_len = 0.0f64;
    for group in &refs {
        for r in group {
            for (n, counts) in ref_counts.iter_mut().enumerate().skip(1) {
                if r.len() >= n {
                    for gram in r.windows(n) {
                        *counts.entry(gram).or_insert(0) += 1;
                    }
                }
            }
        }
        let len_sum: usize = group.iter().map(Vec::len).sum();
        ref_words += len_sum;
        avg_ref_len += len_sum as f64 / group.len() as f64;
    }
    let info = |gram: &[String]| -> f64 {
        let n = gram.len();
        let Some(&count) = ref_counts[n].get(gram) else { return 0.0 };
        let prefix = if n == 1 { ref_words } else { ref_counts[n - 1].get(&gram[..n - 1]).copied().unwrap_or(0) };
        // math.log(x, 2) is ln(x) / ln(2) in CPython, not log2(x).
        (prefix as f64 / count as f64).ln() / 2f64.ln()
    };

    let mut nist_sum = 0.0;
    for n in 1..=MAX_NGRAM {
        let mut hit_info = 0.0;
        let mut total_len = 0i64;
        for (hyp, group) in hyps.iter().zip(&refs) {
            total_len += hyp.len() as i64 - (n as i64 - 1);
            let merged = max_ref_counts(group, n);
            let pred = NgramCounts::of(hyp, n);
            // One sentence's sum first, then added: the order pymteval's nested sums take.
            let mut sentence = 0.0;
            for gram in &pred.order {
                let hits = pred.get(gram).min(merged.get(gram).copied().unwrap_or(0));
                if hits > 0 {
                    sentence += info(gram) * hits as f64;
                }
            }
            hit_info += sentence;
        }
        if total_len == 0 {
            return Err(EvalError::NistUndefined("an n-gram order has no hypothesis n-grams in total"));
        }
        nist_sum += hit_info / total_len as f64;
    }
    let sys_len: i64 = hyps.iter().map(|h| h.len() as i64).sum();
    if avg_ref_len == 0.0 {
        return Err(EvalError::NistUndefined("the references have no words"));
    }
    Ok(length_penalty(sys_len as f64 / avg_ref_len) * nist_sum)
}

/// NIST's brevity penalty: 1 at or above the reference length, falling as exp(-β·ln²(ratio)).
fn length_penalty(ratio: f64) -> f64 {
    if ratio >= 1.0 {
        return 1.0;
    }
    if ratio <= 0.0 {
        return 0.0;
    }
    let ln15 = 1.5f64.ln();
    let beta = -(0.5f64.ln()) / (ln15 * ln15);
    let l = ratio.ln();
    (-beta * (l * l)).exp()
}
