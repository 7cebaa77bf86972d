//! eval.py's "BLEU NLTK": nltk 3.5's `corpus_bleu` with `SmoothingFunction().method3` on the
//! word_tokenize'd texts split on whitespace, after dropping blank references and items left
//! with none. Counts are summed over the corpus as fractions; method3 replaces a zero
//! precision by `1 / (2^k · denominator)` for the k-th such order; the logs are summed with
//! `math.fsum` and weighted 1/4 each.

use std::collections::HashMap;

use super::super::pystr::{py_split, py_strip};

/// `math.fsum`: the correctly rounded sum (CPython's algorithm: exact partials, then the
/// half-even correction).
pub fn fsum(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut partials: Vec<f64> = Vec::new();
    for mut x in values {
        let mut kept = 0;
        for k in 0..partials.len() {
            let mut y = partials[k];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                partials[kept] = lo;
                kept += 1;
            }
            x = hi;
        }
        partials.truncate(kept);
        partials.push(x);
    }
    let Some(mut hi) = partials.pop() else { return 0.0 };
    let mut lo = 0.0;
    while let Some(y) = partials.pop() {
        let x = hi;
        hi = x + y;
        let yr = hi - x;
        lo = y - yr;
        if lo != 0.0 {
            break;
        }
    }
    if let Some(&next) = partials.last() {
        if (lo < 0.0 && next < 0.0) || (lo > 0.0 && next > 0.0) {
            let y = lo * 2.0;
            let x = hi + y;
            if y == x - hi {
                hi = x;
            }
        }
    }
    hi
}

fn ngram_counts<'a>(words: &'a [&'a str], n: usize) -> HashMap<&'a [&'a str], usize> {
    let mut counts = HashMap::new();
    if words.len() >= n {
        for gram in words.windows(n) {
            *counts.entry(gram).or_insert(0) += 1;
        }
    }
    counts
}

/// eval.py's `bleu_nltk(references_tok, hypothesis_tok)`, a fraction.
pub fn nltk_corpus_bleu(references: &[Vec<String>], hypotheses: &[String]) -> f64 {
    let mut numerators = [0usize; 4];
    let mut denominators = [0usize; 4];
    let (mut hyp_total, mut ref_total) = (0usize, 0usize);
    for (refs, hyp) in references.iter().zip(hypotheses) {
        let refs: Vec<Vec<&str>> =
            refs.iter().filter(|r| !py_strip(r).is_empty()).map(|r| py_split(r).collect()).collect();
        if refs.is_empty() {
            continue;
        }
        let hyp: Vec<&str> = py_split(hyp).collect();
        for n in 1..=4 {
            let counts = ngram_counts(&hyp, n);
            let ref_counts: Vec<HashMap<&[&str], usize>> = refs.iter().map(|r| ngram_counts(r, n)).collect();
            let clipped: usize = counts
                .iter()
                .map(|(gram, &count)| {
                    count.min(ref_counts.iter().map(|c| c.get(gram).copied().unwrap_or(0)).max().unwrap_or(0))
                })
                .sum();
            numerators[n - 1] += clipped;
            denominators[n - 1] += counts.values().sum::<usize>().max(1);
        }
        hyp_total += hyp.len();
        // The closest reference length, the shorter on a tie.
        ref_total += refs.iter().map(Vec::len).min_by_key(|&len| (len.abs_diff(hyp.len()), len)).unwrap_or(0);
    }
    if numerators[0] == 0 {
        return 0.0;
    }
    let brevity = if hyp_total > ref_total {
        1.0
    } else if hyp_total == 0 {
        0.0
    } else {
        (1.0 - ref_total as f64 / hyp_total as f64).exp()
    };
    let mut smoothed = 1u32;
    let logs = numerators.iter().zip(&denominators).map(|(&num, &den)| {
        let p = if num == 0 {
            let p = 1.0 / (2f64.powi(smoothed as i32) * den as f64);
            smoothed += 1;
            p
        } else {
            num as f64 / den as f64
        };
        0.25 * p.ln()
    });
    brevity * fsum(logs.collect::<Vec<_>>()).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(items: &[&[&str]]) -> Vec<Vec<String>> {
        items.iter().map(|i| i.iter().map(|s| s.to_string()).collect()).collect()
    }

    /// Expected: eval.py's `bleu_nltk` under nltk 3.5 (repr of the float).
    #[test]
    fn matches_nltk() {
        let refs = owned(&[
            &["it is a guide to action that ensures that the military will forever heed party commands", ""],
            &["he was interested in world history because he read the book", "   "],
            &["", ""],
        ]);
        let hyps: Vec<String> = [
            "it is a guide to action which ensures that the military always obeys the commands of the party",
            "he read the book because he was interested in world history",
            "dropped",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(nltk_corpus_bleu(&refs, &hyps), 0.5373467121595192);
        assert_eq!(nltk_corpus_bleu(&owned(&[&["a b c d"]]), &["a x c y".to_string()]), 0.18995892141289816);
        assert_eq!(nltk_corpus_bleu(&owned(&[&["a b c d e"]]), &["a b x d".to_string()]), 0.2753476574515919);
        assert_eq!(fsum([0.1; 10]), 1.0);
        assert_eq!(fsum([1e100, 1.0, -1e100, 1e-100]), 1.0);
    }
}
