//! TER as eval.py computes it with pyter3 0.3: per item, `pyter.ter(hyp.split(), ref.split())`
//! against each of its references (1 for an empty reference), the smallest kept; then the plain
//! mean over items. pyter's TER is greedy: while some shift of a hypothesis phrase onto a
//! matching reference position lowers the word edit distance, the best one is made (ties go to
//! the greatest shifted word list, as its `sort()` then `[-1]` picks); the score is the shifts
//! plus the final edit distance, over the reference length. Not tercom's or sacrebleu's TER
//! (no shift-size or -distance limits, no corpus-level edits): it can exceed 1.

use super::super::pystr::py_split;

/// `pyter.ter(hypothesis, reference)` on word lists; `None` for an empty reference (pyter
/// divides by zero there).
pub fn pyter_ter(hypothesis: &[&str], reference: &[&str]) -> Option<f64> {
    if reference.is_empty() {
        return None;
    }
    let mut words: Vec<&str> = hypothesis.to_vec();
    let mut shifts = 0usize;
    loop {
        let current = edit_distance(&words, reference);
        match best_shift(&words, reference, current) {
            Some(shifted) => {
                shifts += 1;
                words = shifted;
            }
            None => break,
        }
    }
    Some((shifts + edit_distance(&words, reference)) as f64 / reference.len() as f64)
}

/// pyter's `_shift`: among the phrase pairs `_findpairs` yields, the shift that lowers the
/// edit distance most (ties to the greatest shifted list); `None` when none lowers it.
fn best_shift<'a>(words: &[&'a str], reference: &[&str], current: usize) -> Option<Vec<&'a str>> {
    let mut best: Option<(usize, Vec<&'a str>)> = None;
    for (start, target, length) in phrase_pairs(words, reference) {
        let mut shifted: Vec<&str> = Vec::with_capacity(words.len());
        shifted.extend_from_slice(&words[..start]);
        shifted.extend_from_slice(&words[start + length..]);
        // Python's `shifted[target:target] = phrase` appends past the end.
        let at = target.min(shifted.len());
        shifted.splice(at..at, words[start..start + length].iter().copied());
        let distance = edit_distance(&shifted, reference);
        let better = match &best {
            None => true,
            Some((best_distance, best_words)) => {
                distance < *best_distance || (distance == *best_distance && shifted > *best_words)
            }
        };
        if better {
            best = Some((distance, shifted));
        }
    }
    best.filter(|(distance, _)| *distance < current).map(|(_, shifted)| shifted)
}

/// pyter's `_findpairs`: every `(i, j)` with `i != j` and `words[i] == reference[j]`, `i`
/// outer, with the length of the common run from there.
fn phrase_pairs<'s>(words: &'s [&str], reference: &'s [&str]) -> impl Iterator<Item = (usize, usize, usize)> + 's {
    (0..words.len()).flat_map(move |i| {
        (0..reference.len()).filter(move |&j| i != j && words[i] == reference[j]).map(move |j| {
            let run = words[i..].iter().zip(&reference[j..]).take_while(|(a, b)| a == b).count();
            (i, j, run)
        })
    })
}

/// Word-level Levenshtein distance (insertions, deletions, substitutions all cost 1).
fn edit_distance(words: &[&str], reference: &[&str]) -> usize {
    let mut row: Vec<usize> = (0..=reference.len()).collect();
    for (i, word) in words.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, target) in reference.iter().enumerate() {
            let substitution = diagonal + usize::from(word != target);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[reference.len()]
}

/// eval.py's `ter_score` over word_tokenize'd items: each item's references (the first
/// `num_refs`) scored by [`pyter_ter`], 1 for an empty one, the minimum kept; the sum in item
/// order over the item count. `None` when there is no item (eval.py divides by zero).
pub fn corpus_ter(references: &[Vec<String>], hypotheses: &[String], num_refs: usize) -> Option<f64> {
    let items = references.len().min(hypotheses.len());
    if items == 0 {
        return None;
    }
    let mut total = 0.0;
    for (refs, hyp) in references.iter().zip(hypotheses) {
        let hyp_words: Vec<&str> = py_split(hyp).collect();
        let mut best: Option<f64> = None;
        for reference in refs.iter().take(num_refs) {
            let ref_words: Vec<&str> = py_split(reference).collect();
            let score = match reference.is_empty() {
                true => 1.0,
                false => pyter_ter(&hyp_words, &ref_words).unwrap_or(1.0),
            };
            best = Some(best.map_or(score, |b: f64| b.min(score)));
        }
        // An item without references: Python's min() of nothing raises; count it as 1.
        total += best.unwrap_or(1.0);
    }
    Some(total / items as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ter(hyp: &str, reference: &str) -> Option<f64> {
        let (h, r): (Vec<&str>, Vec<&str>) = (hyp.split_whitespace().collect(), reference.split_whitespace().collect());
        pyter_ter(&h, &r)
    }

    #[test]
    fn pyters_own_example_and_edges() {
        // pyter's docstring: '{0:.3f}'.format(ter(hyp, ref)) == '0.308'; the rest printed by
        // pyter3 0.3 under Python 3.11 (repr of the float).
        let r = "SAUDI ARABIA denied THIS WEEK information published in the AMERICAN new york times";
        let h = "THIS WEEK THE SAUDIS denied information published in the new york times";
        assert_eq!(ter(h, r), Some(0.3076923076923077));
        assert_eq!(ter("", "a b"), Some(1.0));
        assert_eq!(ter("a b c d e", "a"), Some(4.0));
        assert_eq!(ter("b a", "a b"), Some(0.5));
        assert_eq!(ter("x", ""), None);
    }

    #[test]
    fn the_corpus_mean_takes_each_items_best_reference() {
        let refs = vec![vec!["a b".to_string(), "".to_string()], vec!["c".to_string(), "c d".to_string()]];
        let hyps = vec!["a b".to_string(), "c d e".to_string()];
        // Item 0: min(0, 1) = 0; item 1: min(2/1, 1/2) = 0.5.
        assert_eq!(corpus_ter(&refs, &hyps, 2), Some(0.25));
        assert_eq!(corpus_ter(&refs, &hyps, 1), Some((0.0 + 2.0) / 2.0));
        assert_eq!(corpus_ter(&[], &[], 6), None);
    }
}
