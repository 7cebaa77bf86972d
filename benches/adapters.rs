//! The cost of mixing adapters in one running batch: one decode step of a gpt2.sm-shaped model
//! whose rows all decode with one adapter, against the same rows split among four adapters
//! (each a quarter of the items, side by side as the engine keeps them), and the bare base.
//! Adapters adapt all four matrices of every block (the most mixing can cost: each projection
//! then runs as four matmuls), or only `c_attn` (loralib's). The issue allows mixing 10%.
//! Prints a table of rows/s and the 4-adapter step's extra time (`LORABEAM_BENCH_REPS`, 7),
//! for both `--adapter-math` forms, low-rank (the default) and merged, in one run.

mod support;

use std::cell::RefCell;
use std::time::Instant;

use lorabeam_worker::model::{AdaptedModule, AdapterMath, AdapterWeights, BatchKv, Gpt2, ItemKv};

const BEAM: usize = 10;
const CONTEXT: usize = 32;
const GENERATED: usize = 16;

/// A random rank-8 adapter on `modules` of every block, prepared for `model`.
fn adapter(model: &Gpt2, modules: &[AdaptedModule], seed: i64) -> AdapterWeights {
    let adapter = lorabeam_worker::model::random_adapter(model.config(), modules, 8, seed);
    AdapterWeights::prepare(model, &adapter, &format!("adapter-{seed}")).expect("prepare")
}

fn step(model: &Gpt2, tokens: &[i64], items: &mut [ItemKv], adapters: &[Option<&AdapterWeights>], kv: &mut BatchKv) {
    let mut refs: Vec<&mut ItemKv> = items.iter_mut().collect();
    let _ = model.decode_step_adapted(tokens, &mut refs, adapters, kv).expect("decode");
    refs.into_iter().for_each(|i| i.abandon_step(kv));
}

/// One timed case: a decode step.
type Case<'a> = Box<dyn FnMut() + 'a>;

/// Medians of `reps` timed steps per case, the cases taking turns so that load from other
/// processes falls on all of them alike (a ratio is what this bench is for).
fn medians(reps: usize, cases: &mut [Case<'_>]) -> Vec<f64> {
    let mut times = vec![Vec::with_capacity(reps); cases.len()];
    for case in cases.iter_mut() {
        case();
    }
    for _ in 0..reps {
        for (i, case) in cases.iter_mut().enumerate() {
            let started = Instant::now();
            case();
            times[i].push(started.elapsed().as_secs_f64());
        }
    }
    times
        .into_iter()
        .map(|mut t| {
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        })
        .collect()
}

fn main() {
    let threads = support::set_threads();
    let reps = std::env::var("LORABEAM_BENCH_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(7);
    let mut model = Some(support::gpt2_small());
    println!("decode step, gpt2.sm f32 on the CPU, {threads} threads, beam {BEAM}, context {CONTEXT}, {GENERATED} generated; median of {reps}");
    println!(
        "{:<8} {:>5} {:<9} {:>12} {:>12} {:>12} {:>10} {:>10}",
        "adapts", "rows", "math", "base rows/s", "1 adapter", "4 adapters", "4 vs 1", "1 vs base"
    );
    for (label, modules) in [("all4", &AdaptedModule::ALL[..]), ("c_attn", &[AdaptedModule::CAttn][..])] {
        // The forward pass reads only the form each adapter was prepared in, so one model
        // serves both: it is switched between preparing the two sets.
        let mut sets = Vec::new();
        for math in [AdapterMath::LowRank, AdapterMath::Merged] {
            let prepared = model.take().expect("model").with_adapter_math(math);
            sets.push((math, (0..4).map(|seed| adapter(&prepared, modules, seed)).collect::<Vec<_>>()));
            model = Some(prepared);
        }
        let model = model.as_ref().expect("model");
        for rows in [80usize, 320] {
            for (math, adapters) in &sets {
                let t = step_times(model, adapters, rows, reps);
                let rate = |s: f64| rows as f64 / s;
                println!(
                    "{label:<8} {rows:>5} {:<9} {:>12.1} {:>12.1} {:>12.1} {:>9.1}% {:>9.1}%",
                    math.to_string(),
                    rate(t[0]),
                    rate(t[1]),
                    rate(t[2]),
                    100.0 * (t[2] / t[1] - 1.0),
                    100.0 * (t[1] / t[0] - 1.0)
                );
            }
        }
    }
}

/// Median seconds of a decode step of `rows` rows: the bare base, all rows on one adapter,
/// the rows split among four (a quarter of the items each, side by side).
fn step_times(model: &Gpt2, adapters: &[AdapterWeights], rows: usize, reps: usize) -> Vec<f64> {
    let groups = rows / BEAM;
    let (items, kv) = support::running_batch(model, groups, BEAM, CONTEXT, GENERATED);
    let (items, kv) = (RefCell::new(items), RefCell::new(kv));
    let tokens: Vec<i64> = (0..rows as i64).collect();
    let one: Vec<Option<&AdapterWeights>> = vec![Some(&adapters[0]); groups];
    let four: Vec<Option<&AdapterWeights>> = (0..groups).map(|g| Some(&adapters[g * 4 / groups])).collect();
    let run = |per_item: &[Option<&AdapterWeights>]| {
        step(model, &tokens, &mut items.borrow_mut(), per_item, &mut kv.borrow_mut())
    };
    let mut cases: Vec<Case<'_>> = vec![Box::new(|| run(&[])), Box::new(|| run(&one)), Box::new(|| run(&four))];
    medians(reps, &mut cases)
}
