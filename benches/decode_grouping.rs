//! Does a decode step's cost depend on how its rows are grouped into items? The same 320 rows
//! at the same lengths (32-token contexts, 16 generated steps) as 64 items × 5 beams and as
//! 8 items × 40 beams, on both attention paths, gpt2.sm-shaped random GPT-2 + LoRA, f32, CPU.
//! Then a tiny model (n_embd 64, 2 layers), where kernel-launch overhead shows: 64 rows as
//! 1, 8 and 64 items. Prints a table of milliseconds per step (median) and the ratios.
//!
//!   cargo bench --bench decode_grouping
//!
//! `LORABEAM_BENCH_THREADS` sets the threads (default 2), `LORABEAM_BENCH_REPS` the timed steps
//! per cell (default 5).

mod support;

use std::time::Instant;

use lorabeam_worker::model::{AttentionPath, Gpt2, Gpt2Config};

const CONTEXT: usize = 32;
const GENERATED: usize = 16;

fn median_ms(model: &Gpt2, groups: usize, beams: usize, reps: usize) -> f64 {
    let (mut items, mut kv) = support::running_batch(model, groups, beams, CONTEXT, GENERATED);
    let tokens: Vec<i64> = (0..(groups * beams) as i64).collect();
    let _ = support::step(model, &tokens, &mut items, &mut kv);
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            let _ = support::step(model, &tokens, &mut items, &mut kv);
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn table(title: &str, config: &Gpt2Config, shapes: &[(usize, usize)], reps: usize) {
    println!("\n{title}");
    print!("| {:<10} |", "attention");
    shapes.iter().for_each(|(g, b)| print!(" {:>12} |", format!("{g}×{b} ms")));
    println!(" {:>12} |", "worst/best");
    for path in [AttentionPath::Batched, AttentionPath::PerGroup] {
        let model = support::synthetic_model(config.clone()).with_attention(path);
        let ms: Vec<f64> = shapes.iter().map(|&(g, b)| median_ms(&model, g, b, reps)).collect();
        let (lo, hi) = ms.iter().fold((f64::MAX, 0.0f64), |(lo, hi), &m| (lo.min(m), hi.max(m)));
        print!("| {:<10} |", path.to_string());
        ms.iter().for_each(|m| print!(" {m:>12.1} |"));
        println!(" {:>12.2} |", hi / lo);
    }
}

fn main() {
    let threads = support::set_threads();
    let reps = std::env::var("LORABEAM_BENCH_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    println!("decode step, median of {reps}, {threads} threads, context {CONTEXT}, {GENERATED} generated steps");
    let small = Gpt2Config::from_card(lorabeam_worker::model::ModelCard::Small);
    table("gpt2.sm shape, 320 rows", &small, &[(64, 5), (8, 40)], reps);
    let tiny = Gpt2Config { n_embd: 64, n_layer: 2, n_head: 4, ..small };
    table("tiny shape (n_embd 64, 2 layers), 64 rows", &tiny, &[(1, 64), (8, 8), (64, 1)], reps * 4);
}
