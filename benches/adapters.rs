//! The cost of mixing adapters in one running batch: one decode step of a gpt2.sm-shaped model
//! whose rows all decode with one adapter, against the same rows split among four adapters
//! (each a quarter of the items, side by side as the engine keeps them), and the bare base.
//! Adapters adapt all four matrices of every block (the most mixing can cost: each projection
//! then runs as four matmuls), or only `c_attn` (loralib's). The issue allows mixing 10%.
//! Prints a table of rows/s and the 4-adapter step's extra time (`LORABEAM_BENCH_REPS`, 7),
//! then one projection done the engine's way against a batched low-rank path
//! (`LORABEAM_BENCH_PART=steps` or `projection` runs one part).

mod support;

use std::cell::RefCell;
use std::time::Instant;

use lorabeam_worker::model::{AdaptedMatrix, AdaptedModule, Adapter, AdapterWeights, BatchKv, Gpt2, ItemKv, LowRank};
use tch::{Device, Kind, Tensor};

const BEAM: usize = 10;
const CONTEXT: usize = 32;
const GENERATED: usize = 16;

/// A random rank-8 adapter on `modules` of every block.
fn adapter(model: &Gpt2, modules: &[AdaptedModule], seed: i64) -> AdapterWeights {
    let config = model.config();
    let e = config.n_embd as i64;
    let adapter = lorabeam_worker::model::seeded(seed, || {
        let mut matrices = Vec::new();
        for layer in 0..config.n_layer {
            for &module in modules {
                let (n_in, n_out) = module.shape(e);
                let opts = (Kind::Double, Device::Cpu);
                let part = LowRank {
                    column: 0,
                    a: Tensor::randn([8, n_in], opts) * 0.02,
                    b: Tensor::randn([n_out, 8], opts) * 0.02,
                };
                matrices.push(AdaptedMatrix { layer, module, scaling: 2.0, parts: vec![part] });
            }
        }
        Adapter { path: "bench".into(), base_shape: (config.n_embd, config.n_layer), matrices }
    });
    AdapterWeights::merge(model, &adapter, &format!("adapter-{seed}")).expect("merge")
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
    let part = std::env::var("LORABEAM_BENCH_PART").unwrap_or_default();
    if part != "projection" {
        decode_steps(threads, reps);
    }
    if part != "steps" {
        projection(reps);
    }
}

/// Whole decode steps: the bare base, one adapter, four adapters.
fn decode_steps(threads: usize, reps: usize) {
    let model = support::gpt2_small();
    println!("decode step, gpt2.sm f32 on the CPU, {threads} threads, beam {BEAM}, context {CONTEXT}, {GENERATED} generated; median of {reps}");
    println!(
        "{:<8} {:>5} {:>12} {:>12} {:>12} {:>14}",
        "adapts", "rows", "base rows/s", "1 adapter", "4 adapters", "4 vs 1"
    );
    for (label, modules) in [("all4", &AdaptedModule::ALL[..]), ("c_attn", &[AdaptedModule::CAttn][..])] {
        let adapters: Vec<AdapterWeights> = (0..4).map(|seed| adapter(&model, modules, seed)).collect();
        for rows in [80usize, 320] {
            let groups = rows / BEAM;
            let (items, kv) = support::running_batch(&model, groups, BEAM, CONTEXT, GENERATED);
            let (items, kv) = (RefCell::new(items), RefCell::new(kv));
            let tokens: Vec<i64> = (0..rows as i64).collect();
            let one: Vec<Option<&AdapterWeights>> = vec![Some(&adapters[0]); groups];
            let four: Vec<Option<&AdapterWeights>> = (0..groups).map(|g| Some(&adapters[g * 4 / groups])).collect();
            let run = |per_item: &[Option<&AdapterWeights>]| {
                step(&model, &tokens, &mut items.borrow_mut(), per_item, &mut kv.borrow_mut())
            };
            // The bare base, all rows on one adapter, the rows split among four.
            let mut cases: Vec<Case<'_>> = vec![Box::new(|| run(&[])), Box::new(|| run(&one)), Box::new(|| run(&four))];
            let t = medians(reps, &mut cases);
            let rate = |s: f64| rows as f64 / s;
            println!(
                "{label:<8} {rows:>5} {:>12.1} {:>12.1} {:>12.1} {:>13.1}%",
                rate(t[0]),
                rate(t[1]),
                rate(t[2]),
                100.0 * (t[2] / t[1] - 1.0)
            );
        }
    }
}

/// The alternative the design was chosen against, on one `mlp.c_fc`-shaped projection
/// (768 -> 3072, f32): four merged copies each over a quarter of the rows (what the engine
/// does, exact), against one base matmul for all rows plus each adapter's rank-8 update
/// `s (x A^T) B^T` on its rows (cheaper, but it rounds differently from a merged model).
fn projection(reps: usize) {
    let opts = (Kind::Float, Device::Cpu);
    let (n_in, n_out, r) = (768i64, 3072i64, 8i64);
    println!("\none projection {n_in} -> {n_out}, rank {r}, four adapters; median of {reps}");
    println!("{:>5} {:>14} {:>14} {:>14}", "rows", "1 matmul", "4 merged", "base+low-rank");
    let (weights, bias) = lorabeam_worker::model::seeded(5, || {
        let weights: Vec<Tensor> = (0..4).map(|_| Tensor::randn([n_in, n_out], opts)).collect();
        (weights, Tensor::randn([n_out], opts))
    });
    let factors: Vec<(Tensor, Tensor)> =
        (0..4).map(|_| (Tensor::randn([r, n_in], opts), Tensor::randn([n_out, r], opts))).collect();
    for rows in [80i64, 320] {
        let x = Tensor::randn([rows, n_in], opts);
        let quarter = rows / 4;
        let mut cases: Vec<Case<'_>> = vec![
            Box::new(|| {
                let _ = bias.addmm(&x, &weights[0]);
            }),
            Box::new(|| {
                let parts: Vec<Tensor> =
                    (0..4).map(|i| bias.addmm(&x.narrow(0, i * quarter, quarter), &weights[i as usize])).collect();
                let _ = Tensor::cat(&parts, 0);
            }),
            Box::new(|| {
                let out = bias.addmm(&x, &weights[0]);
                for (i, (a, b)) in factors.iter().enumerate() {
                    let rows_of = x.narrow(0, i as i64 * quarter, quarter);
                    let delta = rows_of.matmul(&a.transpose(0, 1)).matmul(&b.transpose(0, 1)) * 2.0;
                    let _ = out.narrow(0, i as i64 * quarter, quarter).f_add_(&delta);
                }
            }),
        ];
        let t = medians(reps, &mut cases);
        let ms = |s: f64| format!("{:.2} ms", 1e3 * s);
        println!("{rows:>5} {:>14} {:>14} {:>14}", ms(t[0]), ms(t[1]), ms(t[2]));
    }
}
