//! Corpus BLEU-4 as e2e-metrics' pymteval `BLEUScore` computes it: clipped n-gram hits over
//! the whole corpus, the reference closest in length to each hypothesis (the shorter one on
//! a tie), a brevity penalty, and tiny floors that keep the logarithms defined.
//!
//! Any number of references per instance works, so the same function scores multi-reference
//! WebNLG or DART files.

use super::mteval::{lowercase_tokens, mteval_tokenize};
use super::ngrams::{max_ref_counts, NgramCounts};

const MAX_NGRAM: usize = 4;
/// pymteval's floors: hits below `TINY` and lengths below `SMALL` are raised to them.
const TINY: f64 = 1e-15;
const SMALL: f64 = 1e-9;

/// BLEU's running counts over a corpus.
#[derive(Debug, Clone, Default)]
pub struct BleuStats {
    ref_len: i64,
    /// Hypothesis n-gram totals, `len - n + 1` per sentence (negative for short ones, as in
    /// pymteval, which does not clamp them).
    cand_lens: [i64; MAX_NGRAM],
    hits: [i64; MAX_NGRAM],
}

impl BleuStats {
    /// Adds one instance, already mteval-tokenised and lowercased. `refs` must not be empty.
    pub fn add(&mut self, hyp: &[String], refs: &[Vec<String>]) {
        for n in 1..=MAX_NGRAM {
            let merged = max_ref_counts(refs, n);
            let pred = NgramCounts::of(hyp, n);
            let hits: usize = pred.counts.iter().map(|(g, &c)| c.min(merged.get(g).copied().unwrap_or(0))).sum();
            self.hits[n - 1] += hits as i64;
            self.cand_lens[n - 1] += hyp.len() as i64 - (n as i64 - 1);
        }
        let hyp_len = hyp.len() as i64;
        let closest = refs.iter().map(|r| r.len() as i64).min_by_key(|&len| ((len - hyp_len).abs(), len));
        self.ref_len += closest.unwrap_or(0);
    }

    /// The BLEU score (a fraction, not a percentage).
    pub fn score(&self) -> f64 {
        let mut bp = 1.0;
        if self.cand_lens[0] <= self.ref_len {
            let cand = if self.cand_lens[0] != 0 { self.cand_lens[0] as f64 } else { 1e-5 };
            bp = (1.0 - self.ref_len as f64 / cand).exp();
        }
        let mut log_sum = 0.0;
        for (&hits, &len) in self.hits.iter().zip(&self.cand_lens) {
            log_sum += ((hits as f64).max(TINY) / (len as f64).max(SMALL)).ln();
        }
        bp * ((1.0 / MAX_NGRAM as f64) * log_sum).exp()
    }
}

/// Corpus BLEU of `hypotheses` against `references` (one group per hypothesis, each group
/// non-empty; [`crate::eval::e2e_scores`] checks that), with pymteval's tokenisation.
pub fn corpus_bleu(references: &[Vec<String>], hypotheses: &[String]) -> f64 {
    let mut stats = BleuStats::default();
    for (refs, hyp) in references.iter().zip(hypotheses) {
        let hyp = lowercase_tokens(&mteval_tokenize(hyp));
        let refs: Vec<Vec<String>> = refs.iter().map(|r| lowercase_tokens(&mteval_tokenize(r))).collect();
        stats.add(&hyp, &refs);
    }
    stats.score()
}
