//! One test per scheduling rule, with a stand-in adapter: pinned while a clone of it lives
//! outside the cache, as the real weights are.

use std::collections::HashSet;
use std::sync::Arc;

use lorabeam_core::{DecodeParams, ModelLimits};
use lorabeam_proto::queue::{ShardItem, ShardMessage};

use super::*;

const MIB: usize = 1 << 20;

#[derive(Clone, Debug)]
struct Weights(Arc<str>);

impl Pinned for Weights {
    fn pinned(&self) -> bool {
        Arc::strong_count(&self.0) > 1
    }
}

fn weights(name: &str) -> Weights {
    Weights(Arc::from(name))
}

fn config(prefer_held: bool, max_adapter_bytes: usize) -> SchedulerConfig {
    SchedulerConfig { limits: ModelLimits::GPT2, adapters: AdapterService::Served, max_adapter_bytes, prefer_held }
}

fn scheduler(prefer_held: bool) -> Scheduler<Weights, ()> {
    Scheduler::new(config(prefer_held, 16 * MIB))
}

fn params(beam: usize) -> DecodeParams {
    DecodeParams { beam, ..DecodeParams::default() }
}

fn shard(seq: u32, items: usize, params: DecodeParams, adapter: &str) -> Shard<()> {
    let items =
        (0..items).map(|i| ShardItem { item: i as u32, context: vec![seq, i as u32], first_step_context: None });
    let message = ShardMessage {
        job_id: format!("job-{seq}"),
        shard_id: format!("{seq}"),
        params,
        items: items.collect(),
        adapter: adapter.into(),
    };
    Shard { seq, message, tag: () }
}

/// Takes every ready item, as a batch that admits all: `(seq, index)` in order; their adapter
/// handles are dropped at once (the items are done).
fn drain(s: &mut Scheduler<Weights, ()>) -> Vec<(u32, usize)> {
    std::iter::from_fn(|| s.next()).map(|a| (a.seq, a.index)).collect()
}

/// Takes every ready item and keeps them (the batch still runs them).
fn admit_all(s: &mut Scheduler<Weights, ()>) -> Vec<Admitted<Weights, ()>> {
    std::iter::from_fn(|| s.next()).collect()
}

fn seqs(items: &[(u32, usize)]) -> Vec<u32> {
    let mut seqs: Vec<u32> = items.iter().map(|&(seq, _)| seq).collect();
    seqs.dedup();
    seqs
}

#[test]
fn items_of_the_running_parameters_enter_in_order() {
    let mut s = scheduler(true);
    s.shard(shard(1, 2, params(2), ""));
    s.shard(shard(2, 1, params(2), ""));
    assert_eq!(s.queued_items(), 3);
    assert_eq!(drain(&mut s), vec![(1, 0), (1, 1), (2, 0)]);
    assert_eq!(s.take_left(), 3);
    assert!(s.queued_items() == 0 && s.take_actions().is_empty());
}

#[test]
fn other_parameters_wait_for_the_batch_to_drain_and_so_does_everything_after_them() {
    let mut s = scheduler(true);
    s.shard(shard(1, 1, params(2), ""));
    s.shard(shard(2, 1, params(3), ""));
    s.shard(shard(3, 1, params(2), ""));
    assert_eq!(drain(&mut s), vec![(1, 0)], "shard 3 shares the parameters but came after shard 2");
    assert!(s.switch_params());
    assert_eq!(s.params().map(|p| p.beam), Some(3));
    assert_eq!(drain(&mut s), vec![(2, 0)]);
    assert!(s.switch_params());
    assert_eq!(drain(&mut s), vec![(3, 0)]);
    assert!(!s.switch_params(), "nothing left to switch to");
}

#[test]
fn parameters_do_not_switch_while_items_of_the_running_ones_wait() {
    let mut s = scheduler(true);
    s.shard(shard(1, 2, params(2), ""));
    s.shard(shard(2, 1, params(3), ""));
    assert!(!s.switch_params(), "shard 1 is still ready");
    assert!(s.next().is_some());
    assert!(!s.switch_params());
    assert!(s.next().is_some());
    assert!(s.switch_params());
}

#[test]
fn a_switch_takes_every_waiting_shard_of_the_new_parameters_and_prefers_a_held_adapter() {
    let mut s = scheduler(true);
    s.shard(shard(1, 1, params(2), "a"));
    assert_eq!(s.take_actions(), vec![Action::Load("a".into())]);
    s.adapter_loaded("a", Ok((weights("a"), MIB)));
    drain(&mut s);
    s.shard(shard(2, 1, params(4), "b"));
    s.shard(shard(3, 1, params(3), "a"));
    s.shard(shard(4, 1, params(4), ""));
    s.shard(shard(5, 1, params(3), ""));
    s.take_actions();
    assert!(s.switch_params());
    assert_eq!(s.params().map(|p| p.beam), Some(3), "held adapter a's parameters go before b's");
    assert_eq!(drain(&mut s), vec![(3, 0), (5, 0)]);
    assert!(s.switch_params());
    assert_eq!(s.take_actions(), vec![Action::Load("b".into())]);
    assert_eq!(drain(&mut s), vec![(4, 0)], "the bare base passes b while it loads");
}

#[test]
fn without_the_preference_parameters_switch_in_arrival_order() {
    let mut s = scheduler(false);
    s.shard(shard(1, 1, params(2), ""));
    s.shard(shard(2, 1, params(4), "b"));
    s.shard(shard(3, 1, params(3), ""));
    drain(&mut s);
    assert!(s.switch_params());
    assert_eq!(s.params().map(|p| p.beam), Some(4));
}

#[test]
fn parameters_the_model_cannot_take_fail_the_whole_shard() {
    let mut s = scheduler(true);
    s.shard(shard(1, 3, params(0), ""));
    match s.take_actions().as_slice() {
        [Action::Fail { seq: 1, items, reason }] => {
            assert_eq!(items, &vec![0, 1, 2]);
            assert!(reason.starts_with("decoding parameters do not fit this worker's model"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.take_left(), 3);
    assert_eq!(s.queued_items(), 0);
}

#[test]
fn an_adapter_is_loaded_once_and_its_shards_enter_when_it_is_cached() {
    let mut s = scheduler(true);
    s.shard(shard(1, 1, params(2), "a"));
    s.shard(shard(2, 2, params(2), "a"));
    assert_eq!(s.take_actions(), vec![Action::Load("a".into())]);
    assert!(s.next().is_none(), "nothing is ready while a loads");
    s.adapter_loaded("a", Ok((weights("a"), MIB)));
    let cached = Action::Cached { adapter: "a".into(), bytes: MIB, evicted: vec![], held_bytes: MIB };
    assert_eq!(s.take_actions(), vec![cached]);
    let admitted = admit_all(&mut s);
    assert_eq!(admitted.len(), 3);
    assert!(admitted.iter().all(|a| a.adapter.as_ref().is_some_and(|w| &*w.0 == "a")));
    s.shard(shard(3, 1, params(2), "a"));
    assert!(s.take_actions().is_empty(), "a is held: no second load");
    assert_eq!(drain(&mut s), vec![(3, 0)]);
}

#[test]
fn one_adapter_loads_at_a_time_and_the_bare_base_passes_the_loads() {
    let mut s = scheduler(true);
    s.shard(shard(1, 1, params(2), "a"));
    s.shard(shard(2, 1, params(2), "b"));
    s.shard(shard(3, 1, params(2), ""));
    assert_eq!(s.take_actions(), vec![Action::Load("a".into())]);
    assert_eq!(drain(&mut s), vec![(3, 0)]);
    s.adapter_loaded("a", Ok((weights("a"), MIB)));
    let actions = s.take_actions();
    assert_eq!(actions.last(), Some(&Action::Load("b".into())), "{actions:?}");
    assert_eq!(drain(&mut s), vec![(1, 0)]);
    s.adapter_loaded("b", Ok((weights("b"), MIB)));
    assert_eq!(drain(&mut s), vec![(2, 0)]);
}

#[test]
fn held_adapters_pass_a_waiting_shard_at_most_max_passes_times() {
    let mut s = scheduler(true);
    s.shard(shard(0, 1, params(2), "a"));
    s.adapter_loaded("a", Ok((weights("a"), MIB)));
    let _running = admit_all(&mut s);
    s.shard(shard(1, 1, params(2), "b"));
    s.take_actions();
    for seq in 2..(2 + MAX_PASSES as u32 + 3) {
        s.shard(shard(seq, 1, params(2), "a"));
    }
    let passed = drain(&mut s);
    assert_eq!(passed.len(), MAX_PASSES, "only MAX_PASSES shards pass b");
    s.adapter_loaded("b", Ok((weights("b"), MIB)));
    let rest = seqs(&drain(&mut s));
    assert_eq!(rest[0], 1, "b goes first once it is cached, then the rest in order: {rest:?}");
    assert_eq!(rest.len(), 4);
}

#[test]
fn without_the_preference_nothing_passes_a_waiting_shard() {
    let mut s = scheduler(false);
    s.shard(shard(0, 1, params(2), "a"));
    s.adapter_loaded("a", Ok((weights("a"), MIB)));
    drain(&mut s);
    s.shard(shard(1, 1, params(2), "b"));
    s.shard(shard(2, 1, params(2), "a"));
    s.shard(shard(3, 1, params(2), ""));
    assert!(s.next().is_none(), "a and the base wait behind b");
    s.adapter_loaded("b", Ok((weights("b"), MIB)));
    assert_eq!(seqs(&drain(&mut s)), vec![1, 2, 3]);
}

#[test]
fn a_load_waits_for_room_while_pinned_adapters_fill_the_cache_and_evicts_once_they_are_done() {
    let mut s = Scheduler::new(config(true, MIB));
    s.shard(shard(1, 2, params(2), "a"));
    s.adapter_loaded("a", Ok((weights("a"), MIB)));
    s.take_actions();
    let first = s.next().expect("a's first item");
    s.shard(shard(2, 1, params(2), "b"));
    assert!(s.take_actions().is_empty(), "a is pinned (one item runs, one is queued): no room to load b");
    let second = s.next().expect("a's second item passes b");
    assert!(s.next().is_none());
    assert!(s.take_actions().is_empty(), "still pinned by the running items");
    drop((first, second));
    assert!(s.next().is_none());
    assert_eq!(s.take_actions(), vec![Action::Load("b".into())], "a is done: b may load");
    s.adapter_loaded("b", Ok((weights("b"), MIB)));
    let cached = Action::Cached { adapter: "b".into(), bytes: MIB, evicted: vec!["a".into()], held_bytes: MIB };
    assert_eq!(s.take_actions(), vec![cached]);
    assert_eq!(drain(&mut s), vec![(2, 0)]);
}

#[test]
fn an_adapter_larger_than_its_estimate_is_loaded_again_when_there_is_room() {
    let mut s = Scheduler::new(config(true, 3 * MIB));
    s.shard(shard(1, 1, params(2), "a"));
    s.adapter_loaded("a", Ok((weights("a"), MIB)));
    let running = admit_all(&mut s);
    s.shard(shard(2, 1, params(2), "b"));
    assert_eq!(s.take_actions().last(), Some(&Action::Load("b".into())), "estimated at a's 1 MiB");
    s.adapter_loaded("b", Ok((weights("b"), 3 * MIB)));
    assert!(s.take_actions().is_empty(), "b takes 3 MiB and a is pinned: not cached, not failed");
    drop(running);
    assert!(s.next().is_none());
    assert_eq!(s.take_actions(), vec![Action::Load("b".into())]);
    s.adapter_loaded("b", Ok((weights("b"), 3 * MIB)));
    assert_eq!(drain(&mut s), vec![(2, 0)]);
}

#[test]
fn a_failed_load_fails_every_shard_naming_the_adapter_and_the_next_one_loads() {
    let mut s = scheduler(true);
    s.shard(shard(1, 2, params(2), "bad"));
    s.shard(shard(2, 1, params(2), "good"));
    s.shard(shard(3, 1, params(5), "bad"));
    s.shard(shard(4, 1, params(2), "bad"));
    assert_eq!(s.take_actions(), vec![Action::Load("bad".into())]);
    s.adapter_loaded("bad", Err("adapter `bad` cannot be loaded: truncated".into()));
    let actions = s.take_actions();
    let failed: Vec<u32> =
        actions.iter().filter_map(|a| if let Action::Fail { seq, .. } = a { Some(*seq) } else { None }).collect();
    assert_eq!(failed, vec![1, 3, 4], "{actions:?}");
    assert_eq!(actions.last(), Some(&Action::Load("good".into())));
    assert_eq!(s.take_left(), 4);
}

#[test]
fn an_adapter_larger_than_the_whole_cache_fails_its_shards() {
    let mut s = Scheduler::new(config(true, MIB));
    s.shard(shard(1, 1, params(2), "huge"));
    s.take_actions();
    s.adapter_loaded("huge", Ok((weights("huge"), 2 * MIB)));
    match s.take_actions().as_slice() {
        [Action::Fail { seq: 1, reason, .. }] => assert!(reason.contains("--max-adapter-mib"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_worker_without_adapters_fails_their_shards_with_its_reason() {
    let mut s: Scheduler<Weights, ()> = Scheduler::new(SchedulerConfig {
        adapters: AdapterService::Unavailable("this worker has no --adapter-dir".into()),
        ..config(true, MIB)
    });
    s.shard(shard(1, 1, params(2), "a"));
    s.shard(shard(2, 1, params(2), ""));
    let reason = "adapter `a`: this worker has no --adapter-dir".to_string();
    assert_eq!(s.take_actions(), vec![Action::Fail { seq: 1, items: vec![0], reason }]);
    assert_eq!(drain(&mut s), vec![(2, 0)]);
}

#[test]
fn dropped_shards_lose_their_queued_items_wherever_they_wait() {
    let mut s = scheduler(true);
    s.shard(shard(1, 3, params(2), ""));
    s.shard(shard(2, 2, params(2), "a"));
    s.shard(shard(3, 2, params(4), ""));
    s.shard(shard(4, 1, params(2), ""));
    assert!(s.next().is_some(), "one item of shard 1 is in the batch");
    s.take_left();
    let dropped = s.drop_shards(&HashSet::from([1, 2, 3]));
    assert_eq!(dropped, 2 + 2 + 2, "shard 1's two queued, shard 2 waiting for a, shard 3 in later");
    assert_eq!(s.take_left(), 6);
    assert_eq!(s.queued_items(), 1);
    s.adapter_loaded("a", Ok((weights("a"), MIB)));
    assert!(s.switch_params(), "only shard 4 is left, after the dropped shard 3");
    assert_eq!(drain(&mut s), vec![(4, 0)]);
}
