//! eval.py's "BLEU": Moses' `multi-bleu-detok.perl` run on gpt2_decode.py's files, which
//! tokenises each line as mteval-v13a does (case kept) and computes corpus BLEU-4 with the
//! closest reference length (the shorter on a tie); eval.py keeps the 2 decimals it prints.
//! Perl reads the files as bytes, so its `\s` is ASCII whitespace only; every other rule is
//! ASCII, and works on characters as on bytes.

use std::collections::HashMap;

use crate::eval::mteval::v13a_spaced;

/// Perl's `\s` on a byte string: space, `\t`, `\n`, `\v`, `\f`, `\r`.
fn is_perl_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// The script's `tokenization` of one line, split into words.
pub fn perl_tokenize(line: &str) -> Vec<String> {
    v13a_spaced(line).split(is_perl_space).filter(|w| !w.is_empty()).map(str::to_string).collect()
}

/// BLEU as the script computes it: `bleu` unrounded (0 to 100) and `printed` as its
/// `BLEU = %.2f` shows it, which is eval.py's number.
#[derive(Debug, Clone, PartialEq)]
pub struct MultiBleu {
    pub bleu: f64,
    pub printed: String,
}

impl MultiBleu {
    /// The printed number, as eval.py parses it.
    pub fn value(&self) -> f64 {
        self.printed.parse().unwrap_or(self.bleu)
    }
}

fn ngrams(words: &[String], n: usize) -> HashMap<&[String], usize> {
    let mut counts = HashMap::new();
    for gram in words.windows(n) {
        *counts.entry(gram).or_insert(0) += 1;
    }
    counts
}

/// The script over items (each hypothesis line with its references, one per reference file).
/// `None` where it dies instead of printing a score: no reference words at all, or no
/// hypothesis words against some reference words (a division by zero).
pub fn multi_bleu(references: &[Vec<String>], hypotheses: &[String]) -> Option<MultiBleu> {
    let mut correct = [0usize; 5];
    let mut total: [Option<usize>; 5] = [None; 5];
    let (mut hyp_len, mut ref_len) = (0usize, 0usize);
    for (refs, hyp) in references.iter().zip(hypotheses) {
        let words = perl_tokenize(hyp);
        let refs: Vec<Vec<String>> = refs.iter().map(|r| perl_tokenize(r)).collect();
        let (mut closest_diff, mut closest_len) = (9999usize, 9999usize);
        for reference in &refs {
            let diff = words.len().abs_diff(reference.len());
            if diff < closest_diff || (diff == closest_diff && reference.len() < closest_len) {
                (closest_diff, closest_len) = (diff, reference.len());
            }
        }
        hyp_len += words.len();
        ref_len += closest_len;
        for n in 1..=4 {
            let mut max_ref: HashMap<&[String], usize> = HashMap::new();
            for reference in &refs {
                for (gram, count) in ngrams(reference, n) {
                    let slot = max_ref.entry(gram).or_insert(0);
                    *slot = (*slot).max(count);
                }
            }
            for (gram, count) in ngrams(&words, n) {
                *total[n].get_or_insert(0) += count;
                correct[n] += count.min(max_ref.get(gram).copied().unwrap_or(0));
            }
        }
    }
    if ref_len == 0 || (hyp_len == 0 && hyp_len < ref_len) {
        return None;
    }
    let precision = |n: usize| match total[n] {
        Some(t) if t > 0 => correct[n] as f64 / t as f64,
        _ => 0.0,
    };
    let my_log = |p: f64| if p == 0.0 { -9999999999.0 } else { p.ln() };
    let brevity = if hyp_len < ref_len { (1.0 - ref_len as f64 / hyp_len as f64).exp() } else { 1.0 };
    let logs = my_log(precision(1)) + my_log(precision(2)) + my_log(precision(3)) + my_log(precision(4));
    let bleu = 100.0 * (brevity * (logs / 4.0).exp());
    Some(MultiBleu { bleu, printed: format!("{bleu:.2}") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenises_as_mteval_13a_on_bytes() {
        let words = perl_tokenize("The Eagle's £20-25, 3.5 stars.&amp; a\u{a0}b à x_y (ok)");
        assert_eq!(
            words,
            [
                "The", "Eagle's", "£20", "-", "25", ",", "3.5", "stars", ".", "&", "a\u{a0}b", "à", "x", "_", "y", "(",
                "ok", ")"
            ]
        );
        assert!(perl_tokenize("  ").is_empty());
    }
}
