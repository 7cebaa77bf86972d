//! Deduplication: records that would decode identically are decoded once and the result is
//! fanned out to each of them.

use std::collections::HashMap;
use std::hash::Hash;

/// The distinct decode inputs of a job, and which one each record uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupPlan<K> {
    /// Distinct inputs, in order of first appearance.
    pub distinct: Vec<K>,
    /// For each record (in input order), the index of its input in `distinct`.
    pub index_of_record: Vec<usize>,
}

impl<K: Hash + Eq + Clone> DedupPlan<K> {
    /// Groups records by their decode input (the truncated context, plus whatever else
    /// changes the result).
    pub fn build(inputs: impl IntoIterator<Item = K>) -> Self {
        let mut index: HashMap<K, usize> = HashMap::new();
        let mut distinct = Vec::new();
        let index_of_record = inputs
            .into_iter()
            .map(|key| {
                *index.entry(key.clone()).or_insert_with(|| {
                    distinct.push(key);
                    distinct.len() - 1
                })
            })
            .collect();
        Self { distinct, index_of_record }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_inputs_share_one_item() {
        let plan = DedupPlan::build([vec![2, 3], vec![2, 3], vec![4], vec![2, 3]]);
        assert_eq!(plan.distinct, vec![vec![2, 3], vec![4]]);
        assert_eq!(plan.index_of_record, vec![0, 0, 1, 0]);
    }
}
