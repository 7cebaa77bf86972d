//! CIDEr-D as pycocoevalcap's `Cider` computes it on PTB-tokenised text: TF-IDF vectors of
//! 1- to 4-grams with document frequencies from the references of the corpus being scored,
//! clipped cosine similarity per n, a Gaussian length penalty (σ = 6; the "length" is the
//! bigram count, as in pycocoevalcap), averaged over n and references, times 10.

use std::collections::HashMap;

use super::npsum::{np_mean, pairwise_sum};
use super::pystr::py_split;

const N: usize = 4;
const SIGMA: f64 = 6.0;

/// An n-gram is a run of tokens joined by spaces (tokens never hold a space here).
type Counts = Vec<(String, usize, usize)>;

/// n-gram counts in pycocoevalcap's insertion order: all unigrams, then bigrams, ...
/// Entries are (n-gram, n - 1, count).
fn precook(sentence: &str) -> Counts {
    let words: Vec<&str> = py_split(sentence).collect();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut out: Counts = Vec::new();
    for k in 1..=N {
        if words.len() < k {
            continue;
        }
        for gram in words.windows(k) {
            let key = gram.join(" ");
            match index.get(&key) {
                Some(&i) => out[i].2 += 1,
                None => {
                    index.insert(key.clone(), out.len());
                    out.push((key, k - 1, 1));
                }
            }
        }
    }
    out
}

/// TF-IDF weights per n in insertion order, their norms, and the bigram count.
struct Vector {
    weights: [Vec<(String, f64)>; N],
    lookup: [HashMap<String, f64>; N],
    norm: [f64; N],
    length: f64,
}

fn to_vector(counts: &Counts, df: &HashMap<String, f64>, log_ref_len: f64) -> Vector {
    let mut weights: [Vec<(String, f64)>; N] = Default::default();
    let mut lookup: [HashMap<String, f64>; N] = Default::default();
    let mut norm = [0.0; N];
    let mut length = 0usize;
    for (gram, n, tf) in counts {
        let d = df.get(gram).copied().unwrap_or(0.0).max(1.0).ln();
        let w = *tf as f64 * (log_ref_len - d);
        weights[*n].push((gram.clone(), w));
        lookup[*n].insert(gram.clone(), w);
        norm[*n] += w * w;
        if *n == 1 {
            length += tf;
        }
    }
    Vector { weights, lookup, norm: norm.map(f64::sqrt), length: length as f64 }
}

fn similarity(hyp: &Vector, reference: &Vector) -> [f64; N] {
    let delta = hyp.length - reference.length;
    let mut val = [0.0; N];
    for (n, v) in val.iter_mut().enumerate() {
        for (gram, w) in &hyp.weights[n] {
            let r = reference.lookup[n].get(gram).copied().unwrap_or(0.0);
            *v += w.min(r) * r;
        }
        if hyp.norm[n] != 0.0 && reference.norm[n] != 0.0 {
            *v /= hyp.norm[n] * reference.norm[n];
        }
        // np.e ** x in Python is pow(e, x), which is not always exp(x) to the last bit.
        *v *= std::f64::consts::E.powf(-(delta * delta) / (2.0 * SIGMA * SIGMA));
    }
    val
}

/// Corpus CIDEr-D of PTB-tokenised hypotheses against their (non-empty) reference groups.
pub fn corpus_cider(references: &[Vec<String>], hypotheses: &[String]) -> f64 {
    let crefs: Vec<Vec<Counts>> = references.iter().map(|g| g.iter().map(|r| precook(r)).collect()).collect();
    let mut df: HashMap<String, f64> = HashMap::new();
    for refs in &crefs {
        let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
        for (gram, _, _) in refs.iter().flatten() {
            if seen.insert(gram) {
                *df.entry(gram.clone()).or_insert(0.0) += 1.0;
            }
        }
    }
    let log_ref_len = (crefs.len() as f64).ln();
    let scores: Vec<f64> = hypotheses
        .iter()
        .zip(&crefs)
        .map(|(hyp, refs)| {
            let vec = to_vector(&precook(hyp), &df, log_ref_len);
            let mut score = [0.0; N];
            for r in refs {
                let sim = similarity(&vec, &to_vector(r, &df, log_ref_len));
                for (total, s) in score.iter_mut().zip(sim) {
                    *total += s;
                }
            }
            let mut avg = pairwise_sum(&score) / N as f64;
            avg /= refs.len() as f64;
            avg * 10.0
        })
        .collect();
    np_mean(&scores)
}
