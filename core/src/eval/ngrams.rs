//! N-gram counting shared by BLEU and NIST, in first-occurrence order so that floating-point
//! sums run in the order pymteval's dicts iterate.

use std::collections::HashMap;

/// The n-grams of `tokens` with their counts, in order of first occurrence.
pub struct NgramCounts<'a> {
    pub order: Vec<&'a [String]>,
    pub counts: HashMap<&'a [String], usize>,
}

impl<'a> NgramCounts<'a> {
    pub fn of(tokens: &'a [String], n: usize) -> Self {
        let mut order = Vec::new();
        let mut counts: HashMap<&[String], usize> = HashMap::new();
        if n > 0 && tokens.len() >= n {
            for gram in tokens.windows(n) {
                let count = counts.entry(gram).or_insert(0);
                if *count == 0 {
                    order.push(gram);
                }
                *count += 1;
            }
        }
        Self { order, counts }
    }

    pub fn get(&self, gram: &[String]) -> usize {
        self.counts.get(gram).copied().unwrap_or(0)
    }
}

/// For each n-gram, its largest count in any one reference (BLEU's clipping counts).
pub fn max_ref_counts(refs: &[Vec<String>], n: usize) -> HashMap<&[String], usize> {
    let mut merged: HashMap<&[String], usize> = HashMap::new();
    for r in refs {
        for (gram, count) in NgramCounts::of(r, n).counts {
            let slot = merged.entry(gram).or_insert(0);
            *slot = (*slot).max(count);
        }
    }
    merged
}
