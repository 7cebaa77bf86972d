//! ROUGE-L as pycocoevalcap's `Rouge` computes it on PTB-tokenised text: the longest common
//! subsequence against each reference, the best precision and the best recall (each taken
//! over the references separately), an F-measure with β = 1.2, averaged over instances.

use super::npsum::np_mean;

const BETA: f64 = 1.2;

/// ROUGE-L of one hypothesis against its references (space-separated tokens, as split by
/// `str.split(" ")`, so an empty string is one empty token).
pub fn rouge_l_sentence(hypothesis: &str, references: &[String]) -> f64 {
    let cand: Vec<&str> = hypothesis.split(' ').collect();
    let mut prec_max = f64::NEG_INFINITY;
    let mut rec_max = f64::NEG_INFINITY;
    for reference in references {
        let r: Vec<&str> = reference.split(' ').collect();
        let lcs = lcs_len(&r, &cand) as f64;
        prec_max = prec_max.max(lcs / cand.len() as f64);
        rec_max = rec_max.max(lcs / r.len() as f64);
    }
    if prec_max != 0.0 && rec_max != 0.0 {
        let b2 = BETA * BETA;
        ((1.0 + b2) * prec_max * rec_max) / (rec_max + b2 * prec_max)
    } else {
        0.0
    }
}

/// Corpus ROUGE-L: the numpy mean of the per-instance scores.
pub fn corpus_rouge_l(references: &[Vec<String>], hypotheses: &[String]) -> f64 {
    let scores: Vec<f64> = hypotheses.iter().zip(references).map(|(h, r)| rouge_l_sentence(h, r)).collect();
    np_mean(&scores)
}

/// Length of the longest common subsequence, one row of the table at a time.
fn lcs_len(a: &[&str], b: &[&str]) -> usize {
    let mut prev = vec![0usize; b.len() + 1];
    let mut cur = vec![0usize; b.len() + 1];
    for x in a {
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = if x == y { prev[j] + 1 } else { prev[j + 1].max(cur[j]) };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}
