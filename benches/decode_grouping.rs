//! Does a decode step's cost depend on how its rows are grouped into items? The same 320 rows
//! at the same lengths (32-token contexts, 16 generated steps) as 64 items × 5 beams and as
//! 8 items × 40 beams, on both attention paths, gpt2.sm-shaped random GPT-2 + LoRA, f32, CPU.
//! Then a tiny model (n_embd 64, 2 layers), where kernel-launch overhead shows: 64 rows as
//! 1, 8 and 64 items. Prints a table of milliseconds per step, median and fastest, and the
//! worst/best ratio of each. On a shared machine the fastest step is the better estimate of a
//! cell's own cost: another process taking a core stalls libtorch's two-thread parallel
//! regions, and such stalls land on some cells' medians and not on others'.
//!
//!   cargo bench --bench decode_grouping
//!
//! `LORABEAM_BENCH_THREADS` sets the threads (default 2), `LORABEAM_BENCH_REPS` the timed steps
//! per cell (default 5), `LORABEAM_BENCH_ATTENTION` the paths (default "batched per-group").

mod support;

use std::time::Instant;

use lorabeam_worker::model::{AttentionPath, Gpt2, Gpt2Config};

const CONTEXT: usize = 32;
const GENERATED: usize = 16;

/// Median and fastest milliseconds per step of each cell (a model and a grouping). The cells' steps are
/// interleaved, one of each in turn, so that a busy moment of a shared machine weighs on every
/// cell alike.
fn step_ms(cells: &[(&Gpt2, usize, usize)], reps: usize) -> Vec<(f64, f64)> {
    let mut batches: Vec<_> = cells
        .iter()
        .map(|&(model, groups, beams)| {
            let (items, kv) = support::running_batch(model, groups, beams, CONTEXT, GENERATED);
            let tokens: Vec<i64> = (0..(groups * beams) as i64).collect();
            (model, items, kv, tokens)
        })
        .collect();
    let mut times = vec![Vec::new(); cells.len()];
    for rep in 0..=reps {
        for (cell, (model, items, kv, tokens)) in batches.iter_mut().enumerate() {
            let start = Instant::now();
            let _ = support::step(model, tokens, items, kv);
            // The first round warms up.
            if rep > 0 {
                times[cell].push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    times
        .into_iter()
        .map(|mut t| {
            t.sort_by(f64::total_cmp);
            (t[t.len() / 2], t[0])
        })
        .collect()
}

fn table(title: &str, config: &Gpt2Config, shapes: &[(usize, usize)], reps: usize, paths: &[AttentionPath]) {
    println!("\n{title}");
    print!("| {:<10} |", "attention");
    shapes.iter().for_each(|(g, b)| print!(" {:>16} |", format!("{g}×{b} ms")));
    println!(" {:>16} |", "worst/best");
    print!("| {:<10} |", "");
    (0..=shapes.len()).for_each(|_| print!(" {:>16} |", "median (fastest)"));
    println!();
    let models: Vec<Gpt2> = paths.iter().map(|&p| support::synthetic_model(config.clone()).with_attention(p)).collect();
    let cells: Vec<(&Gpt2, usize, usize)> =
        models.iter().flat_map(|m| shapes.iter().map(move |&(g, b)| (m, g, b))).collect();
    let ms = step_ms(&cells, reps);
    let spread = |values: &mut dyn Iterator<Item = f64>| {
        let (lo, hi) = values.fold((f64::MAX, 0.0f64), |(lo, hi), m| (lo.min(m), hi.max(m)));
        hi / lo
    };
    for (path, ms) in paths.iter().zip(ms.chunks(shapes.len())) {
        print!("| {:<10} |", path.to_string());
        ms.iter().for_each(|(median, fastest)| print!(" {:>16} |", format!("{median:.1} ({fastest:.1})")));
        let (median, fastest) = (spread(&mut ms.iter().map(|m| m.0)), spread(&mut ms.iter().map(|m| m.1)));
        println!(" {:>16} |", format!("{median:.2} ({fastest:.2})"));
    }
}

fn main() -> anyhow::Result<()> {
    let threads = support::set_threads();
    let reps = std::env::var("LORABEAM_BENCH_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let paths = std::env::var("LORABEAM_BENCH_ATTENTION").unwrap_or_else(|_| "batched per-group".into());
    let paths = paths.split_whitespace().map(str::parse).collect::<Result<Vec<AttentionPath>, _>>()?;
    println!(
        "decode step, median and fastest of {reps}, {threads} threads, context {CONTEXT}, {GENERATED} generated steps"
    );
    let small = Gpt2Config::from_card(lorabeam_worker::model::ModelCard::Small);
    table("gpt2.sm shape, 320 rows", &small, &[(64, 5), (8, 40)], reps, &paths);
    let tiny = Gpt2Config { n_embd: 64, n_layer: 2, n_head: 4, ..small };
    table("tiny shape (n_embd 64, 2 layers), 64 rows", &tiny, &[(1, 64), (8, 8), (64, 1)], reps * 4, &paths);
    Ok(())
}
