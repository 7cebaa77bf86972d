//! Shared bench set-up: a gpt2.sm-shaped random GPT-2 + LoRA (r=4, alpha 32) in memory.

#![allow(dead_code)]

use lorabeam_worker::model::{
    synthetic_checkpoint, weights_from_tensors, Gpt2, Gpt2Config, LoraConfig, ModelCard, Precision,
};

pub const LORA: LoraConfig = LoraConfig { rank: 4, alpha: 32.0 };

/// Threads for libtorch: `LORABEAM_BENCH_THREADS`, default 2 (this machine's cores).
pub fn set_threads() -> usize {
    let threads = std::env::var("LORABEAM_BENCH_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
    tch::set_num_threads(threads as i32);
    threads
}

pub fn gpt2_small() -> Gpt2 {
    synthetic_model(Gpt2Config::from_card(ModelCard::Small))
}

/// A random GPT-2 + LoRA of any shape, f32 on the CPU.
pub fn synthetic_model(config: Gpt2Config) -> Gpt2 {
    let tensors = synthetic_checkpoint(&config, LORA, 1234);
    let weights = weights_from_tensors(&config, LORA, tensors, Precision::F32, tch::Device::Cpu)
        .expect("synthetic weights are valid");
    Gpt2::new(config, weights, Precision::F32, tch::Device::Cpu)
}

/// Best-of-`reps` FLOP/s of an `n × n × n` f32 matmul: this machine's measured peak.
pub fn matmul_peak_flops(n: i64, reps: usize) -> f64 {
    let a = tch::Tensor::randn([n, n], (tch::Kind::Float, tch::Device::Cpu));
    let b = tch::Tensor::randn([n, n], (tch::Kind::Float, tch::Device::Cpu));
    let _ = a.matmul(&b);
    (0..reps)
        .map(|_| {
            let start = std::time::Instant::now();
            let _ = a.matmul(&b);
            2.0 * (n * n * n) as f64 / start.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

/// A running batch of `groups` items × `beams` rows with `context`-token contexts, after
/// `generated` decode steps (beams keep their own parents), on the model's attention path.
pub fn running_batch(
    model: &Gpt2,
    groups: usize,
    beams: usize,
    context: usize,
    generated: usize,
) -> (Vec<lorabeam_worker::model::ItemKv>, lorabeam_worker::model::BatchKv) {
    let contexts: Vec<Vec<u32>> =
        (0..groups).map(|g| (0..context as u32).map(|t| (g as u32 * 7919 + t * 104729) % 50000).collect()).collect();
    let refs: Vec<&[u32]> = contexts.iter().map(Vec::as_slice).collect();
    let mut kv = model.new_batch_kv(None).expect("kv");
    let mut items = Vec::new();
    // Prefill in chunks, as the engine does, so the padded prefill stays small.
    for chunk in refs.chunks(64) {
        items.extend(model.prefill(chunk, &mut kv, beams, 64).expect("prefill").0);
    }
    let parents: Vec<usize> = (0..beams).collect();
    let tokens: Vec<i64> = (0..(groups * beams) as i64).collect();
    for _ in 0..generated {
        let mut refs: Vec<&mut lorabeam_worker::model::ItemKv> = items.iter_mut().collect();
        let _ = model.decode_step(&tokens, &mut refs, &mut kv).expect("decode");
        items.iter_mut().for_each(|i| i.reorder(&parents, &mut kv).expect("reorder"));
    }
    (items, kv)
}

/// One decode step of a running batch, then the step is rolled back (each row's new slot is
/// dropped), so the batch keeps its lengths from one iteration to the next.
pub fn step(
    model: &Gpt2,
    tokens: &[i64],
    items: &mut [lorabeam_worker::model::ItemKv],
    kv: &mut lorabeam_worker::model::BatchKv,
) -> tch::Tensor {
    let mut refs: Vec<&mut lorabeam_worker::model::ItemKv> = items.iter_mut().collect();
    let logits = model.decode_step(tokens, &mut refs, kv).expect("decode");
    refs.into_iter().for_each(|i| i.abandon_step(kv));
    logits
}
