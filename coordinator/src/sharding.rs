//! Sharding: a job's plan of distinct items (from `lorabeam_core::plan`) cut into the queue
//! messages workers claim, each a run of consecutive items.

use lorabeam_core::{JobPlan, ValidDecodeParams};
use lorabeam_proto::queue::{ShardItem, ShardMessage};

use crate::error::{CoordinatorError, Result};

/// Cuts a plan's items into shards of at most `shard_size` (at least 1, as the intake checks)
/// consecutive items; each shard names the job's adapter ("" for the bare base).
pub fn shard_items(
    job_id: &str,
    plan: &JobPlan,
    params: &ValidDecodeParams,
    shard_size: usize,
    adapter: &str,
) -> Result<Vec<ShardMessage>> {
    let items = plan
        .distinct
        .iter()
        .enumerate()
        .map(|(item, (context, first_step))| {
            let item = u32::try_from(item).map_err(|_| CoordinatorError::LimitExceeded {
                limit: "items",
                detail: format!("a job may have at most {} distinct items", u32::MAX),
            })?;
            Ok(ShardItem { item, context: context.clone(), first_step_context: first_step.clone() })
        })
        .collect::<Result<Vec<ShardItem>>>()?;
    Ok(items
        .chunks(shard_size.max(1))
        .enumerate()
        .map(|(k, chunk)| ShardMessage {
            job_id: job_id.to_string(),
            shard_id: shard_id(k),
            params: (**params).clone(),
            items: chunk.to_vec(),
            adapter: adapter.to_string(),
        })
        .collect())
}

/// The `k`th shard's id: `s` and at least six digits.
fn shard_id(k: usize) -> String {
    format!("s{k:06}")
}

/// Whether a worker's report names a shard id of that form (it goes into a Redis set).
pub fn is_shard_id(id: &str) -> bool {
    id.strip_prefix('s')
        .is_some_and(|digits| (6..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lorabeam_core::{plan_items, DecodeParams, FirstStep, ModelLimits, Record};

    #[test]
    fn shards_cover_every_item_once_in_order() {
        let params = DecodeParams { eval_len: 4, seq_len: 7, ..Default::default() }.validate(ModelLimits::GPT2);
        let params = params.expect("valid");
        let records: Vec<Record> = [[1u32], [1], [2], [3]]
            .iter()
            .enumerate()
            .map(|(id, c)| Record { id, context: c.to_vec(), completion: vec![] })
            .collect();
        let plan = plan_items(&records, &params, FirstStep { reference_batch_size: 1, exact: false });
        let shards = shard_items("j", &plan, &params, 2, "").expect("shards");
        let items: Vec<Vec<u32>> = shards.iter().map(|s| s.items.iter().map(|i| i.item).collect()).collect();
        assert_eq!(items, vec![vec![0, 1], vec![2]]);
        assert_eq!(shards[1].shard_id, "s000001");
        assert!(shards.iter().all(|s| is_shard_id(&s.shard_id)));
        assert!(is_shard_id(&shard_id(12_345_678)));
        for bad in ["", "s", "s12", "x000001", "s00000a", &format!("s{}", "0".repeat(1000))] {
            assert!(!is_shard_id(bad), "{bad}");
        }
    }
}
