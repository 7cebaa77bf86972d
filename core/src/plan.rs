//! From checked records to the distinct items a job decodes: truncation, gpt2_beam.py's
//! batch_size > 1 first step, and deduplication. `lorabeam run` and the coordinator's intake
//! share it, so both decode exactly the same items.

use crate::dedup::DedupPlan;
use crate::params::ValidDecodeParams;
use crate::records::Record;
use crate::reference_batching::first_step_contexts;

/// How the reference's batches are reproduced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirstStep {
    /// gpt2_beam.py's `--batch_size`.
    pub reference_batch_size: usize,
    /// Use every line's own context even when `reference_batch_size > 1`.
    pub exact: bool,
}

/// One distinct decode input: the truncated context and, when it differs, the context whose
/// logits pick the first token.
pub type ItemInput = (Vec<u32>, Option<Vec<u32>>);

/// The items of a job and which one each record (in input order) uses.
pub type JobPlan = DedupPlan<ItemInput>;

/// Plans the decoding of `records` under `params`.
pub fn plan_items(records: &[Record], params: &ValidDecodeParams, first_step: FirstStep) -> JobPlan {
    let contexts: Vec<&[u32]> = records.iter().map(|r| params.truncate_context(&r.context)).collect();
    let first_steps = if first_step.exact {
        vec![None; contexts.len()]
    } else {
        first_step_contexts(&contexts, first_step.reference_batch_size, params.beam)
    };
    DedupPlan::build(contexts.iter().map(|c| c.to_vec()).zip(first_steps))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::{DecodeParams, ModelLimits};

    fn params(beam: usize) -> ValidDecodeParams {
        let limits = ModelLimits { vocab_size: 50257, n_positions: 16 };
        DecodeParams { beam, eval_len: 4, seq_len: 7, ..Default::default() }.validate(limits).expect("valid")
    }

    fn record(id: usize, context: &[u32]) -> Record {
        Record { id, context: context.to_vec(), completion: Vec::new() }
    }

    #[test]
    fn truncated_duplicates_share_an_item() {
        let records = [record(0, &[9, 1, 2, 3]), record(1, &[1, 2, 3]), record(2, &[4]), record(3, &[5])];
        let plan = plan_items(&records, &params(1), FirstStep { reference_batch_size: 1, exact: false });
        assert_eq!(plan.index_of_record, vec![0, 0, 1, 2], "context keeps its last 3 tokens");
        assert_eq!(plan.distinct[0], (vec![1, 2, 3], None));
    }

    #[test]
    fn reference_batches_change_first_steps_unless_exact() {
        let records = [record(0, &[1, 2]), record(1, &[3, 4])];
        let batched = plan_items(&records, &params(2), FirstStep { reference_batch_size: 2, exact: false });
        assert_eq!(batched.distinct[1].1, Some(vec![1, 2]), "item 1 reads row 1 = item 0's query");
        let exact = plan_items(&records, &params(2), FirstStep { reference_batch_size: 2, exact: true });
        assert_eq!(exact.distinct[1].1, None);
    }
}
