//! The engine on a small seeded model in f64: its output against a plain, unbatched beam search
//! written the way gpt2_beam.py reads, an item's result independent of its batch, how `max_rows`
//! and the KV budget bound the running batch, and the `ItemSource` protocol.
//!
//! The model is tiny (32 wide, 2 layers, 97 tokens), and its tied embeddings make it predict the
//! token it was just fed: without n-gram bans it repeats itself, so the bans and penalties change
//! what it writes. Parameters are checked against GPT-2's vocabulary, so EOS 50256 lies outside
//! the small model's: there only the extra EOS ids end beams and `min_length` stays 0 (it masks
//! 50256). The `min_length` tests run a model with GPT-2's whole vocabulary.

use std::cell::RefCell;
use std::collections::VecDeque;

use lorabeam_core::{DecodeParams, ModelLimits};
use tch::Device;

use super::*;
use crate::model::{
    random_adapter, synthetic_checkpoint, weights_from_tensors, AdaptedModule, Gpt2Config, LoraConfig, Precision,
};

fn model_of(vocab_size: usize) -> Gpt2 {
    let config =
        Gpt2Config { vocab_size, n_positions: 48, n_embd: 32, n_layer: 2, n_head: 2, layer_norm_epsilon: 1e-5 };
    let lora = LoraConfig { rank: 2, alpha: 8.0, base_only: false };
    let tensors = synthetic_checkpoint(&config, lora, 11);
    let weights = weights_from_tensors(&config, lora, tensors, Precision::F64, Device::Cpu).expect("weights");
    Gpt2::new(config, weights, Precision::F64, Device::Cpu)
}

fn model() -> Gpt2 {
    model_of(97)
}

/// Tens of times slower per step than `model()`: its LM head and softmax span 50257 tokens.
fn model_with_eos() -> Gpt2 {
    model_of(50257)
}

/// Plain search: no bans, no penalties, so the rules under test are the only ones in play.
fn params(beam: usize, eval_len: usize) -> DecodeParams {
    DecodeParams { beam, eval_len, seq_len: 40, no_repeat_ngram_size: 0, ..Default::default() }
}

fn valid(p: DecodeParams) -> ValidDecodeParams {
    p.validate(ModelLimits::GPT2).expect("valid params")
}

fn item(key: usize, context: &[u32]) -> WorkItem {
    WorkItem { key, context: context.to_vec(), first_step_context: None, adapter: None }
}

/// Every item's prediction, by key (each key once), and the run's stats.
fn decode_with(engine: &Engine, items: Vec<WorkItem>) -> (Vec<(usize, Vec<u32>)>, EngineStats) {
    let mut out = Vec::new();
    let stats = engine.run(items, |key, predict| out.push((key, predict))).expect("run");
    out.sort();
    for pair in out.windows(2) {
        assert_ne!(pair[0].0, pair[1].0, "key {} reported twice", pair[0].0);
    }
    (out, stats)
}

fn decode(model: &Gpt2, p: &ValidDecodeParams, items: Vec<WorkItem>) -> Vec<(usize, Vec<u32>)> {
    decode_with(&Engine::new(model, p.clone(), usize::MAX), items).0
}

fn decode_one(model: &Gpt2, p: &ValidDecodeParams, item: WorkItem) -> Vec<u32> {
    decode(model, p, vec![item]).remove(0).1
}

/// Beam rows of every decode step, as the step observer sees them.
fn rows_per_step(engine: Engine, items: Vec<WorkItem>) -> (Vec<usize>, EngineStats) {
    let rows = std::sync::Mutex::new(Vec::new());
    let observe = |_: std::time::Duration, r: usize| rows.lock().expect("rows").push(r);
    let stats = engine.with_step_observer(&observe).run(items, |_, _| {}).expect("run");
    (rows.into_inner().expect("rows"), stats)
}

/// gpt2_beam.py's search for one item, as it reads: the whole sequence through the model at
/// every step (no KV cache), the logits processed in plain f64, `log(softmax)`, top-k over
/// `beam × vocab` (beam 0 only at step 0), candidates on EOS, all `eval_len` steps (no early
/// finish), a last offer of every beam, and the best padded with 0.
fn plain_beam_search(
    model: &Gpt2,
    context: &[u32],
    adapter: Option<&AdapterWeights>,
    p: &ValidDecodeParams,
) -> Vec<u32> {
    let (beam, n) = (p.beam, p.no_repeat_ngram_size);
    let mut histories: Vec<Vec<u32>> = vec![Vec::new(); beam];
    let mut scores = vec![0.0; beam];
    let mut best: Option<(f64, Vec<u32>)> = None;
    let offer = |best: &mut Option<(f64, Vec<u32>)>, score: f64, history: &[u32]| {
        let score = score / (history.len() as f64).powf(p.length_penalty);
        if best.as_ref().is_none_or(|(b, _)| *b < score) {
            *best = Some((score, history.to_vec()));
        }
    };
    for cur_len in 0..p.eval_len {
        // (score, row, token), best first, at most `beam` of them.
        let mut top: Vec<(f64, usize, u32)> = Vec::new();
        for (row, history) in histories.iter().enumerate().take(if cur_len == 0 { 1 } else { beam }) {
            let sequence: Vec<u32> = context.iter().chain(history).copied().collect();
            let logits = model.prefill_logits_adapted(&[&sequence], &[adapter]).expect("logits");
            let mut logits = Vec::<f64>::try_from(logits.flatten(0, -1)).expect("logits");
            if p.repetition_penalty != 1.0 {
                let mut seen: Vec<u32> = history.clone();
                seen.sort();
                seen.dedup();
                for t in seen {
                    let x = &mut logits[t as usize];
                    *x = if *x < 0.0 { *x * p.repetition_penalty } else { *x / p.repetition_penalty };
                }
            }
            if cur_len < p.min_length {
                for &eos in p.eos_token_ids() {
                    logits[eos as usize] = f64::NEG_INFINITY;
                }
            }
            if n > 0 && cur_len > 0 && cur_len + 1 >= n {
                let prefix = &history[cur_len + 1 - n..];
                for ngram in history.windows(n).filter(|w| &w[..n - 1] == prefix) {
                    logits[ngram[n - 1] as usize] = f64::NEG_INFINITY;
                }
            }
            let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = logits.iter().map(|x| (x - max).exp()).sum();
            for (token, x) in logits.iter().enumerate() {
                let score = scores[row] + ((x - max).exp() / sum).ln();
                if top.len() < beam || score > top[beam - 1].0 {
                    let at = top.partition_point(|c| c.0 >= score);
                    top.insert(at, (score, row, token as u32));
                    top.truncate(beam);
                }
            }
        }
        histories =
            top.iter().map(|&(_, row, token)| histories[row].iter().copied().chain([token]).collect()).collect();
        scores = top.iter().map(|c| c.0).collect();
        for (history, score) in histories.iter().zip(scores.iter_mut()) {
            if p.is_eos(*history.last().expect("a token")) {
                offer(&mut best, *score, history);
                *score = f64::NEG_INFINITY;
            }
        }
    }
    for (history, score) in histories.iter().zip(&scores) {
        offer(&mut best, *score, history);
    }
    let mut out = best.expect("a hypothesis").1;
    out.resize(p.eval_len, 0);
    out
}

const CONTEXTS: [&[u32]; 4] = [&[5, 9, 2], &[10, 20, 30, 40, 50, 60], &[7, 7, 7, 8], &[42]];

/// Runs `contexts` through the engine together (two groups at a time, so groups share steps
/// and join mid-way) and checks each against the plain search. Returns how many predictions
/// were padded and how many items ended before `eval_len`.
fn check_against_plain_search(model: &Gpt2, p: &ValidDecodeParams, contexts: &[&[u32]]) -> (usize, usize) {
    let items: Vec<WorkItem> = contexts.iter().enumerate().map(|(k, c)| item(k, c)).collect();
    let mut results = Vec::new();
    Engine::new(model, p.clone(), 2 * p.beam)
        .run_source(&mut IterSource(items.into_iter()), |key, predict, generated| {
            results.push((key, predict, generated))
        })
        .expect("run");
    assert_eq!(results.len(), contexts.len());
    let (mut padded, mut early) = (0, 0);
    for (key, predict, generated) in results {
        assert_eq!(predict, plain_beam_search(model, contexts[key], None, p), "{p:?}: context {key}");
        padded += usize::from(predict.last() == Some(&0));
        early += usize::from(generated < p.eval_len * p.beam);
    }
    (padded, early)
}

/// Every rule against the plain search. The extra EOS ids (one token in four) make beams end
/// early, so candidates, the early finish and the padding are exercised; the test checks that
/// they were.
#[test]
fn matches_a_plain_beam_search() {
    let model = model();
    let eos: Vec<u32> = (0..97).step_by(4).collect();
    let cases = [
        DecodeParams { length_penalty: 0.8, no_repeat_ngram_size: 2, extra_eos_token_ids: eos.clone(), ..params(3, 7) },
        DecodeParams { repetition_penalty: 1.5, extra_eos_token_ids: eos.clone(), ..params(2, 6) },
        DecodeParams { length_penalty: -0.5, no_repeat_ngram_size: 1, extra_eos_token_ids: eos, ..params(3, 5) },
        DecodeParams { no_repeat_ngram_size: 3, repetition_penalty: 0.7, ..params(4, 6) },
    ];
    let (mut padded, mut early) = (0, 0);
    for case in cases {
        let (p, e) = check_against_plain_search(&model, &valid(case), &CONTEXTS);
        (padded, early) = (padded + p, early + e);
    }
    assert!(padded > 0 && early > 0, "the cases must end some hypotheses early ({padded} padded, {early} early)");
}

/// `min_length` and the repetition penalty against the plain search, on GPT-2's vocabulary.
#[test]
fn matches_a_plain_beam_search_with_min_length() {
    let model = model_with_eos();
    let eos: Vec<u32> = (0..50256).step_by(4).collect();
    let p = DecodeParams { min_length: 3, repetition_penalty: 1.5, extra_eos_token_ids: eos, ..params(2, 5) };
    let (padded, _) = check_against_plain_search(&model, &valid(p), &CONTEXTS[..2]);
    assert!(padded > 0, "a hypothesis must end (after min_length)");
}

/// The batch is only a way to run many groups at once: each item's prediction is the one it
/// gets alone, whichever items share its steps (other context lengths, other adapters, items
/// joining and leaving as rows free up).
#[test]
fn an_items_result_does_not_depend_on_its_batch() {
    let model = model();
    let adapter = |seed, name| {
        let weights = random_adapter(model.config(), &AdaptedModule::ALL, 4, seed);
        AdapterWeights::prepare(&model, &weights, name).expect("adapter")
    };
    let (a, b) = (adapter(1, "a"), adapter(2, "b"));
    let p = valid(DecodeParams { length_penalty: 0.9, no_repeat_ngram_size: 2, ..params(3, 7) });
    let mut items = Vec::new();
    for (i, context) in CONTEXTS.iter().enumerate() {
        for (j, adapter) in [Some(&b), None, Some(&a)].into_iter().enumerate() {
            items.push(WorkItem { adapter: adapter.cloned(), ..item(3 * i + j, context) });
        }
    }
    let alone: Vec<(usize, Vec<u32>)> =
        items.iter().map(|item| (item.key, decode_one(&model, &p, item.clone()))).collect();
    let adapted = alone.iter().filter(|(key, predict)| key % 3 != 1 && *predict != alone[key / 3 * 3 + 1].1).count();
    assert!(adapted > 0, "the adapters must change some predictions");
    for max_rows in [usize::MAX, 2 * p.beam, 5 * p.beam] {
        let (together, _) = decode_with(&Engine::new(&model, p.clone(), max_rows), items.clone());
        assert_eq!(together, alone, "max_rows {max_rows}");
    }
}

#[test]
fn each_item_is_reported_once_with_its_key() {
    let model = model();
    let p = valid(params(2, 3));
    let keys = [40, 3, 17, 0, 999];
    let items: Vec<WorkItem> = keys.iter().zip(CONTEXTS.iter().cycle()).map(|(&k, c)| item(k, c)).collect();
    let mut seen = Vec::new();
    let stats =
        Engine::new(&model, p.clone(), 4).run(items.clone(), |key, predict| seen.push((key, predict))).expect("run");
    assert_eq!(stats.items, keys.len());
    let mut got: Vec<usize> = seen.iter().map(|s| s.0).collect();
    got.sort();
    assert_eq!(got, vec![0, 3, 17, 40, 999]);
    for item in items {
        let predict = &seen.iter().find(|s| s.0 == item.key).expect("reported").1;
        let key = item.key;
        assert_eq!(predict, &decode_one(&model, &p, item), "key {key}");
    }
}

/// `run` is `run_source` over an iterator; `run_source` also reports the tokens the model
/// generated for the item: every beam's, every step, when nothing ends early.
#[test]
fn run_source_reports_predictions_and_generated_tokens() {
    let model = model();
    let p = valid(params(3, 4));
    let items: Vec<WorkItem> = CONTEXTS.iter().enumerate().map(|(k, c)| item(k, c)).collect();
    let engine = Engine::new(&model, p.clone(), usize::MAX);
    let mut from_source = Vec::new();
    engine
        .run_source(&mut IterSource(items.clone().into_iter()), |key, predict, generated| {
            from_source.push((key, predict, generated))
        })
        .expect("run_source");
    from_source.sort();
    let (from_run, _) = decode_with(&engine, items);
    assert_eq!(from_source.len(), from_run.len());
    for ((key, predict, generated), (run_key, run_predict)) in from_source.into_iter().zip(from_run) {
        assert_eq!((key, &predict), (run_key, &run_predict));
        assert_eq!(generated, p.eval_len * p.beam, "key {key}");
    }
}

/// With one beam the search is greedy: once its only beam ends in EOS the item is final at
/// once, its prediction the EOS-terminated hypothesis padded with 0.
#[test]
fn an_item_whose_beams_all_ended_is_final_early_and_padded_with_zeros() {
    let model = model();
    let greedy = decode_one(&model, &valid(params(1, 6)), item(0, CONTEXTS[1]));
    let eos = greedy[0];
    assert!(greedy.iter().all(|&t| t == eos), "the model repeats itself: {greedy:?}");
    let p = valid(DecodeParams { extra_eos_token_ids: vec![eos], ..params(1, 6) });
    let mut results = Vec::new();
    Engine::new(&model, p.clone(), usize::MAX)
        .run_source(&mut IterSource([item(0, CONTEXTS[1])].into_iter()), |_, predict, generated| {
            results.push((predict, generated))
        })
        .expect("run");
    let (predict, generated) = results.pop().expect("one result");
    assert_eq!(predict, vec![eos, 0, 0, 0, 0, 0]);
    assert!(generated < p.eval_len, "stopped after {generated} of {} tokens", p.eval_len);
}

/// `min_length` keeps every EOS id (50256 and the extra ones) out of the first tokens.
#[test]
fn min_length_holds_eos_back() {
    let model = model_with_eos();
    let eos = decode_one(&model, &valid(params(1, 6)), item(0, CONTEXTS[1]))[0];
    let p = valid(DecodeParams { min_length: 3, extra_eos_token_ids: vec![eos], ..params(1, 6) });
    let predict = decode_one(&model, &p, item(0, CONTEXTS[1]));
    assert!(predict[..3].iter().all(|&t| !p.is_eos(t)), "{predict:?}");
    assert_ne!(predict[3..], [0, 0, 0], "the hypothesis runs past min_length: {predict:?}");
}

/// An item's first token is chosen from `first_step_context`'s last-position logits; the
/// following ones continue its own context (its KV cache).
#[test]
fn first_step_context_chooses_only_the_first_token() {
    let model = model();
    let (own, other) = (CONTEXTS[0], CONTEXTS[1]);
    let greedy = |eval_len, context: &[u32]| decode_one(&model, &valid(params(1, eval_len)), item(0, context));
    let first = greedy(2, other)[0];
    assert_ne!(greedy(2, own)[0], first, "the two contexts must start differently");
    let substituted = WorkItem { first_step_context: Some(other.to_vec()), ..item(0, own) };
    let predict = decode_one(&model, &valid(params(1, 3)), substituted);
    let own_then_first: Vec<u32> = own.iter().copied().chain([first]).collect();
    let rest = greedy(2, &own_then_first);
    assert_eq!(predict, [&[first][..], &rest].concat());
}

/// gpt2_beam.py with `--eval_len 1` writes the best first token. `run_source` once stepped the
/// groups that `start` had just made final too, so with `eval_len` 1 a group was advanced past
/// its KV cache (sized for `eval_len - 1` steps) and `run` failed with a libtorch error.
#[test]
fn eval_len_one_writes_the_best_first_token() {
    let model = model();
    let first = decode_one(&model, &valid(params(1, 2)), item(0, CONTEXTS[0]))[0];
    assert_eq!(decode_one(&model, &valid(params(1, 1)), item(0, CONTEXTS[0])), vec![first]);
}

/// Three items of two beams and three tokens each (two decode steps, nothing ends early).
fn three_items() -> (ValidDecodeParams, Vec<WorkItem>) {
    let items = (0..3).map(|k| item(k, &[10 + k as u32, 20, 30])).collect();
    (valid(params(2, 3)), items)
}

#[test]
fn max_rows_bounds_the_rows_decoded_together() {
    let model = model();
    let (p, items) = three_items();
    let expected = [(usize::MAX, vec![6, 6]), (6, vec![6, 6]), (5, vec![4, 4, 2, 2]), (4, vec![4, 4, 2, 2])];
    for (max_rows, rows) in expected {
        let (seen, stats) = rows_per_step(Engine::new(&model, p.clone(), max_rows), items.clone());
        assert_eq!(seen, rows, "max_rows {max_rows}");
        assert_eq!(stats.peak_rows, rows[0]);
        assert_eq!(stats.decode_steps, rows.len());
        assert_eq!(stats.items, 3);
        assert_eq!(stats.prefill_tokens, 9);
        assert_eq!(stats.generated_tokens, 3 * p.beam * p.eval_len);
    }
}

/// One group always runs, even when its beams alone are over `max_rows`.
#[test]
fn a_group_wider_than_max_rows_still_runs_alone() {
    let model = model();
    let (p, items) = three_items();
    let (seen, _) = rows_per_step(Engine::new(&model, p.clone(), 1), items.clone());
    assert_eq!(seen, vec![2; 6]);
    assert_eq!(decode_with(&Engine::new(&model, p.clone(), 1), items.clone()).0, decode(&model, &p, items));
}

#[test]
fn kv_bytes_count_the_context_once_and_every_beams_steps() {
    let model = model();
    let engine = Engine::new(&model, valid(params(3, 4)), usize::MAX);
    // Keys and values, 2 layers of 32 f64 each: 1 KiB a position.
    assert_eq!(model.kv_bytes_per_position(), 1024);
    assert_eq!(engine.kv_bytes(&item(0, &[1, 2, 3, 4, 5])), (5 + 3 * 4) * 1024);
}

#[test]
fn exceeds_budget_refuses_only_past_the_budget() {
    let model = model();
    let p = valid(params(3, 4));
    let it = item(0, &[1, 2, 3, 4, 5]);
    let need = (5 + 3 * 4) * 1024;
    assert_eq!(Engine::new(&model, p.clone(), usize::MAX).exceeds_budget(&it), None, "no budget, no refusal");
    let engine = |budget| Engine::new(&model, p.clone(), usize::MAX).with_kv_budget(budget);
    assert_eq!(engine(need).exceeds_budget(&it), None);
    let refusal = engine(need - 1).exceeds_budget(&it).expect("over the budget");
    for part in ["needs 0.0 MiB of KV cache", "5 context tokens", "beam 3", "eval_len 4", "budget of 0.0 MiB"] {
        assert!(refusal.contains(part), "{part:?} missing from {refusal:?}");
    }
}

/// Items wait while the running ones hold the KV budget, as they do for rows: a budget of
/// exactly two items runs two at once.
#[test]
fn the_kv_budget_bounds_the_running_batch() {
    let model = model();
    let (p, items) = three_items();
    let need = Engine::new(&model, p.clone(), usize::MAX).kv_bytes(&items[0]);
    for (budget, rows) in [(2 * need, vec![4, 4, 2, 2]), (2 * need - 1, vec![2; 6]), (3 * need, vec![6, 6])] {
        let engine = Engine::new(&model, p.clone(), usize::MAX).with_kv_budget(budget);
        assert_eq!(rows_per_step(engine, items.clone()).0, rows, "budget {budget} for {need} an item");
    }
}

/// A source that hands out `ready` items while the engine runs (one per call, `None` between
/// them when `gaps` says so) and `waiting` ones only when it is idle, recording every call.
struct Scripted<'a> {
    ready: VecDeque<Option<WorkItem>>,
    waiting: VecDeque<WorkItem>,
    handed: Vec<usize>,
    done: &'a RefCell<Vec<usize>>,
    ended: bool,
    calls: Vec<bool>,
}

impl ItemSource for Scripted<'_> {
    fn next_item(&mut self, idle: bool) -> Option<WorkItem> {
        assert!(!self.ended, "asked for more after ending the run");
        self.calls.push(idle);
        let all_done = self.done.borrow().len() == self.handed.len();
        assert_eq!(idle, all_done, "idle exactly when every item handed out is final ({:?})", self.handed);
        let next = if idle { self.waiting.pop_front() } else { self.ready.pop_front().flatten() };
        match &next {
            Some(item) => self.handed.push(item.key),
            None => self.ended = idle,
        }
        next
    }
}

/// The `ItemSource` protocol: asked with `idle` exactly when nothing runs; a `None` while
/// items run only means nothing is ready (later items still join), a `None` while idle ends
/// the run. Items that joined late decode as they do alone.
#[test]
fn an_item_source_feeds_a_running_engine_until_none_while_idle() {
    let model = model();
    let p = valid(params(2, 4));
    let items: Vec<WorkItem> = CONTEXTS.iter().enumerate().map(|(k, c)| item(k, c)).collect();
    let done = RefCell::new(Vec::new());
    let mut source = Scripted {
        ready: VecDeque::from([None, Some(items[1].clone()), None, None, Some(items[2].clone())]),
        waiting: VecDeque::from([items[0].clone(), items[3].clone()]),
        handed: Vec::new(),
        done: &done,
        ended: false,
        calls: Vec::new(),
    };
    let mut results = Vec::new();
    let stats = Engine::new(&model, p.clone(), usize::MAX)
        .run_source(&mut source, |key, predict, _| {
            done.borrow_mut().push(key);
            results.push((key, predict));
        })
        .expect("run");
    assert!(source.ended && source.ready.is_empty() && source.waiting.is_empty(), "every item was handed out");
    assert_eq!(source.calls.first(), Some(&true), "the first call finds the engine idle");
    assert_eq!(source.calls.iter().filter(|&&idle| idle).count(), 3, "two idle starts and the final None");
    assert_eq!(stats.items, 4);
    results.sort();
    for (key, predict) in results {
        assert_eq!(predict, decode_one(&model, &p, items[key].clone()), "key {key}");
    }
}
