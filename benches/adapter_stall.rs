//! A decode step's latency while a new adapter loads, with the load on the engine thread (how
//! the worker did it before: `Adapter::load`, then `AdapterWeights::prepare`, between two steps
//! of the running batch) against the load on a loader thread (how it does it now: the loader
//! reads it and, for the default low-rank math, prepares it too with
//! `AdapterWeights::prepare_apart`; the engine thread keeps stepping and takes it ready). One process,
//! the real functions, both ways side by side: a gpt2.sm-shaped random GPT-2 (f32, CPU) runs a
//! batch of 8 items × beam 4 (context 32); at step 10 a new loralib adapter is asked for
//! (c_attn, rank `LORABEAM_BENCH_STALL_RANK`, default 1024, written to a temporary file first).
//! Prints the median step, the longest step interval from the request until the adapter is
//! ready, and the read and prepare times.
//!
//! cargo bench --bench adapter_stall   (LORABEAM_BENCH_THREADS, default 2; LORABEAM_BENCH_ROUNDS, default 3)

mod support;

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lorabeam_worker::checkpoint::save_torch_checkpoint;
use lorabeam_worker::model::{synthetic_checkpoint, Adapter, AdapterWeights, Gpt2, LoraConfig, PrepareTarget};

const STEPS: usize = 40;
const ASK_AT: usize = 10;

struct Measured {
    median_step_ms: f64,
    longest_while_loading_ms: f64,
    read_ms: f64,
    prepare_ms: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Steps the batch `STEPS` times; at `ASK_AT` the adapter is asked for, read on this thread
/// (`on_engine_thread`) or on a thread of its own, then prepared on this thread.
fn run(model: &Gpt2, path: &Path, on_engine_thread: bool) -> Measured {
    let (mut items, mut kv) = support::running_batch(model, 8, 4, 32, 4);
    let tokens: Vec<i64> = (0..32).collect();
    let mut intervals = Vec::new();
    let (mut asked, mut ready) = (None::<Instant>, None::<Instant>);
    let (mut read_ms, mut prepare_ms) = (0.0, 0.0);
    let (tx, rx) = mpsc::channel::<(AdapterWeights, f64, f64)>();
    let mut last = Instant::now();
    for step in 0..STEPS {
        if step == ASK_AT {
            asked = Some(Instant::now());
            if on_engine_thread {
                let started = Instant::now();
                let adapter = Adapter::load(path, model.config(), 32.0).expect("adapter reads");
                read_ms = started.elapsed().as_secs_f64() * 1000.0;
                let started = Instant::now();
                let _weights = AdapterWeights::prepare(model, &adapter, "big").expect("prepares");
                prepare_ms = started.elapsed().as_secs_f64() * 1000.0;
                ready = Some(Instant::now());
            } else {
                let (tx, path, config) = (tx.clone(), path.to_path_buf(), model.config().clone());
                let target = PrepareTarget::of(model);
                std::thread::spawn(move || {
                    let started = Instant::now();
                    let adapter = Adapter::load(&path, &config, 32.0).expect("adapter reads");
                    let read = started.elapsed().as_secs_f64() * 1000.0;
                    let started = Instant::now();
                    let prepared = AdapterWeights::prepare_apart(&target, &adapter, "big");
                    let weights = prepared.expect("low-rank math").expect("prepares");
                    let _ = tx.send((weights, read, started.elapsed().as_secs_f64() * 1000.0));
                });
            }
        }
        if let Ok((_weights, read, prepare)) = rx.try_recv() {
            (read_ms, prepare_ms) = (read, prepare);
            ready = Some(Instant::now());
        }
        let _ = support::step(model, &tokens, &mut items, &mut kv);
        let now = Instant::now();
        intervals.push((now.duration_since(last), now));
        last = now;
    }
    // A read slower than the steps left: wait for it, so its prepare is counted too.
    if ready.is_none() {
        let (_weights, read, prepare) = rx.recv_timeout(Duration::from_secs(600)).expect("the adapter is read");
        (read_ms, prepare_ms) = (read, prepare);
        ready = Some(Instant::now());
    }
    let (asked, ready) = (asked.expect("asked"), ready.expect("ready"));
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let quiet: Vec<f64> = intervals.iter().take(ASK_AT).skip(2).map(|(d, _)| ms(*d)).collect();
    // Every step interval that overlaps the time from the request until the adapter is ready.
    let while_loading = intervals.iter().filter(|(d, end)| *end > asked && *end - *d <= ready);
    let longest = while_loading.map(|(d, _)| ms(*d)).fold(0.0, f64::max);
    Measured { median_step_ms: median(quiet), longest_while_loading_ms: longest, read_ms, prepare_ms }
}

fn main() {
    let threads = support::set_threads();
    let rank: usize = std::env::var("LORABEAM_BENCH_STALL_RANK").ok().and_then(|v| v.parse().ok()).unwrap_or(1024);
    let rounds: usize = std::env::var("LORABEAM_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let model = support::gpt2_small();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.pt");
    let lora = LoraConfig { rank, alpha: 32.0, base_only: false };
    let only_lora: Vec<_> =
        synthetic_checkpoint(model.config(), lora, 2).into_iter().filter(|(k, _)| k.contains("lora_")).collect();
    save_torch_checkpoint(&path, &only_lora).expect("write adapter");
    let mib = std::fs::metadata(&path).map(|m| m.len() as f64 / (1 << 20) as f64).unwrap_or(0.0);
    println!(
        "gpt2.sm-shaped random GPT-2, f32, CPU, {threads} libtorch threads; batch 8 items x beam 4, context 32; \
         adapter loralib c_attn r={rank}, {mib:.0} MiB, asked for at step {ASK_AT}"
    );
    println!("| round | adapter read | median step (ms) | longest step interval while it loads (ms) | read (ms) | prepare (ms) |");
    println!("|---|---|---|---|---|---|");
    for round in 1..=rounds {
        for (name, inline) in [("on the engine thread (before)", true), ("on a loader thread (now)", false)] {
            let m = run(&model, &path, inline);
            println!(
                "| {round} | {name} | {:.1} | {:.1} | {:.0} | {:.1} |",
                m.median_step_ms, m.longest_while_loading_ms, m.read_ms, m.prepare_ms
            );
        }
    }
}
