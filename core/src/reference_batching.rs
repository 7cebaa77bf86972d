//! gpt2_beam.py's first step with `batch_size > 1`, reproduced so outputs match it.
//!
//! The reference repeats each query `beam` times, then picks the first step's logits with
//! `logits[_bbatch, _query_len - 1]`, where `_bbatch` holds *item* indices but indexes the
//! *repeated* rows. Item `i` of a batch therefore reads row `i`, which belongs to item
//! `i / beam`, at its own position `len_i - 1`. Its first token is thus chosen from the
//! logits that follow the first `len_i` tokens of item `i / beam`'s query padded with 0
//! (the reference pads queries with token 0). Later steps use the item's own keys and values.
//! With `batch_size = 1` or `beam = 1` every item reads its own row and nothing changes.

/// For each context (truncated, in input order), the token sequence whose last-position
/// logits pick its first token when `batch_size` consecutive lines form a batch; `None`
/// where that is the context itself.
pub fn first_step_contexts(contexts: &[&[u32]], batch_size: usize, beam: usize) -> Vec<Option<Vec<u32>>> {
    // A batch size of 0 (unset on the wire) or a beam of 0 (refused by validation before
    // planning) must not divide by zero here: both read as 1, the reference's own minimum.
    let batch_size = batch_size.max(1);
    let beam = beam.max(1);
    contexts
        .chunks(batch_size)
        .flat_map(|batch| {
            batch.iter().enumerate().map(move |(i, own)| {
                let source = batch[i / beam];
                let first: Vec<u32> = source.iter().copied().chain(std::iter::repeat(0)).take(own.len()).collect();
                (first != *own).then_some(first)
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_read_the_row_of_item_i_over_beam() {
        let contexts: Vec<&[u32]> = vec![&[1, 2, 3], &[4, 5], &[6, 7, 8, 9], &[1, 2, 3]];
        // batch 4, beam 2: items 0,1 read item 0; items 2,3 read item 1 (padded with 0).
        let firsts = first_step_contexts(&contexts, 4, 2);
        assert_eq!(firsts, vec![None, Some(vec![1, 2]), Some(vec![4, 5, 0, 0]), Some(vec![4, 5, 0])]);
    }

    #[test]
    fn batch_one_or_greedy_changes_nothing() {
        let contexts: Vec<&[u32]> = vec![&[1, 2, 3], &[4, 5]];
        assert_eq!(first_step_contexts(&contexts, 1, 10), vec![None, None]);
        assert_eq!(first_step_contexts(&contexts, 2, 1), vec![None, None]);
    }

    #[test]
    fn batches_are_consecutive_lines() {
        let contexts: Vec<&[u32]> = vec![&[1], &[2], &[3], &[4, 4]];
        assert_eq!(first_step_contexts(&contexts, 2, 5), vec![None, Some(vec![1]), None, Some(vec![3, 0])]);
    }
}
