//! Shared bench set-up: a gpt2.sm-shaped random GPT-2 + LoRA (r=4, alpha 32) in memory.

#![allow(dead_code)]

use lorabeam_worker::model::{
    synthetic_checkpoint, weights_from_tensors, Gpt2, Gpt2Config, LoraConfig, ModelCard, Precision,
};

pub const LORA: LoraConfig = LoraConfig { rank: 4, alpha: 32.0, base_only: false };

/// Threads for libtorch: `LORABEAM_BENCH_THREADS`, default 2 (this machine's cores).
pub fn set_threads() -> usize {
    let threads = std::env::var("LORABEAM_BENCH_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
    tch::set_num_threads(threads as i32);
    threads
}

pub fn gpt2_small() -> Gpt2 {
    let config = Gpt2Config::from_card(ModelCard::Small);
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
