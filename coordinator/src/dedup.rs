//! Deduplication: records whose truncated contexts are identical are decoded once.

use std::collections::HashMap;

use crate::validation::Record;

/// The distinct contexts of a job, and which one each record uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupPlan {
    /// Distinct contexts, in order of first appearance.
    pub contexts: Vec<Vec<u32>>,
    /// For each record (in input order), the index of its context in `contexts`.
    pub context_of_record: Vec<usize>,
}

impl DedupPlan {
    /// Groups records by their context after `truncate` (the model sees only that part).
    pub fn build<'a>(records: &'a [Record], truncate: impl Fn(&'a [u32]) -> &'a [u32]) -> Self {
        let mut index: HashMap<&[u32], usize> = HashMap::new();
        let mut contexts = Vec::new();
        let context_of_record = records
            .iter()
            .map(|r| {
                let key = truncate(&r.context);
                *index.entry(key).or_insert_with(|| {
                    contexts.push(key.to_vec());
                    contexts.len() - 1
                })
            })
            .collect();
        Self {
            contexts,
            context_of_record,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_truncated_contexts_share_one_item() {
        let records: Vec<Record> = [vec![1, 2, 3], vec![9, 2, 3], vec![4], vec![1, 2, 3]]
            .into_iter()
            .enumerate()
            .map(|(id, context)| Record { id, context })
            .collect();
        let plan = DedupPlan::build(&records, |c| &c[c.len().saturating_sub(2)..]);
        assert_eq!(plan.contexts, vec![vec![2, 3], vec![4]]);
        assert_eq!(plan.context_of_record, vec![0, 0, 1, 0]);
    }
}
