//! From checked records to the distinct items a job decodes: truncation, gpt2_beam.py's
//! batch_size > 1 first step, and deduplication. `lorabeam run` and the coordinator's intake
//! share it, so both decode exactly the same items.

use lorabeam_proto::queue::{ShardItem, ShardMessage};
use lorabeam_proto::ValidDecodeParams;

use crate::dedup::DedupPlan;
use crate::reference_batching::first_step_contexts;
use crate::validation::Record;

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

/// Cuts a plan's items into shards of at most `shard_size` consecutive items.
pub fn shard_items(job_id: &str, plan: &JobPlan, params: &ValidDecodeParams, shard_size: usize) -> Vec<ShardMessage> {
    let items: Vec<ShardItem> = plan
        .distinct
        .iter()
        .enumerate()
        .map(|(item, (context, first_step))| ShardItem {
            item: item as u32,
            context: context.clone(),
            first_step_context: first_step.clone(),
        })
        .collect();
    items
        .chunks(shard_size.max(1))
        .enumerate()
        .map(|(k, chunk)| ShardMessage {
            job_id: job_id.to_string(),
            shard_id: format!("s{k:06}"),
            params: (**params).clone(),
            items: chunk.to_vec(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lorabeam_proto::{DecodeParams, ModelLimits};

    fn params(beam: usize) -> ValidDecodeParams {
        let limits = ModelLimits { vocab_size: 50257, n_positions: 16 };
        DecodeParams { beam, eval_len: 4, seq_len: 7, ..Default::default() }.validate(limits).expect("valid")
    }

    fn record(id: usize, context: &[u32]) -> Record {
        Record { id, context: context.to_vec() }
    }

    #[test]
    fn truncated_duplicates_share_an_item_and_shards_cover_every_item_once() {
        let records = [record(0, &[9, 1, 2, 3]), record(1, &[1, 2, 3]), record(2, &[4]), record(3, &[5])];
        let plan = plan_items(&records, &params(1), FirstStep { reference_batch_size: 1, exact: false });
        assert_eq!(plan.index_of_record, vec![0, 0, 1, 2], "context keeps its last 3 tokens");
        let shards = shard_items("j", &plan, &params(1), 2);
        let items: Vec<Vec<u32>> = shards.iter().map(|s| s.items.iter().map(|i| i.item).collect()).collect();
        assert_eq!(items, vec![vec![0, 1], vec![2]]);
        assert_eq!(shards[1].shard_id, "s000001");
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
