//! Sharding: a job's plan of distinct items (from `lorabeam_core::plan`) cut into the queue
//! messages workers claim, each a run of consecutive items.

use lorabeam_core::{JobPlan, ValidDecodeParams};
use lorabeam_proto::queue::{ShardItem, ShardMessage};

use crate::error::{CoordinatorError, Result};

/// Largest shard when the fleet sizes them (`--shard-size` not given).
pub const MAX_FLEET_SHARD_SIZE: usize = 100;
/// Smallest shard (but the last) when the fleet sizes them: below it a shard's queue round
/// trip and prefill cost more than spreading it gains.
pub const MIN_FLEET_SHARD_SIZE: usize = 8;

/// The shard size that spreads `items` over `live_workers` (one shard each, as even as can
/// be), at least [`MIN_FLEET_SHARD_SIZE`] and at most [`MAX_FLEET_SHARD_SIZE`]. With no live
/// worker (a model scaled to zero) the job is cut as for one.
pub fn fleet_shard_size(items: usize, live_workers: usize) -> usize {
    let per_worker = items.div_ceil(live_workers.max(1));
    let size = per_worker.clamp(MIN_FLEET_SHARD_SIZE, MAX_FLEET_SHARD_SIZE);
    // As many shards as that size makes, their items shared out evenly (105 on 2: 53 + 52).
    let shards = items.div_ceil(size).max(1);
    items.div_ceil(shards).max(MIN_FLEET_SHARD_SIZE.min(items)).max(1)
}

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
    fn the_fleet_sizes_shards_to_spread_a_job_over_its_live_workers() {
        // The e2e test set's 105 contexts on two workers: one shard each, 53 + 52.
        assert_eq!(fleet_shard_size(105, 2), 53);
        assert_eq!(fleet_shard_size(105, 3), 35);
        // Scaled to zero, or one worker: shards as large as allowed, evened out.
        assert_eq!(fleet_shard_size(105, 0), 53);
        assert_eq!(fleet_shard_size(250, 1), 84);
        assert_eq!(fleet_shard_size(4630, 4), 99, "47 shards of at most 100, evened out");
        // Small jobs keep the minimum rather than a shard per worker of one or two items.
        assert_eq!(fleet_shard_size(10, 5), MIN_FLEET_SHARD_SIZE);
        assert_eq!(fleet_shard_size(3, 2), 3);
        assert_eq!(fleet_shard_size(0, 2), 1);
        for (items, workers) in [(105, 2), (1000, 7), (17, 16), (1, 1), (999, 1000)] {
            let size = fleet_shard_size(items, workers);
            assert!((1..=MAX_FLEET_SHARD_SIZE).contains(&size), "{items} on {workers}: {size}");
        }
    }

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
