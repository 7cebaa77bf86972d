//! `lorabeam fixture`: a seeded GPT-2 + LoRA checkpoint in gpt2_ft.py's format, its
//! `config.json`, and sample test data, so the project can run end to end on a fresh machine.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use lorabeam_worker::checkpoint::save_torch_checkpoint;
use lorabeam_worker::model::{config_json, synthetic_checkpoint, Gpt2Config, LoraConfig};

#[derive(Debug, Args)]
pub struct FixtureArgs {
    /// Folder to write lora_full.pt, config.json and sample.jsonl into (created if missing).
    #[arg(long, env = "LORABEAM_FIXTURE_OUT")]
    pub out: PathBuf,
    /// Hidden size.
    #[arg(long = "n_embd", env = "LORABEAM_FIXTURE_N_EMBD", default_value_t = 64)]
    pub n_embd: usize,
    /// Transformer blocks.
    #[arg(long = "n_layer", env = "LORABEAM_FIXTURE_N_LAYER", default_value_t = 2)]
    pub n_layer: usize,
    /// Attention heads.
    #[arg(long = "n_head", env = "LORABEAM_FIXTURE_N_HEAD", default_value_t = 4)]
    pub n_head: usize,
    /// Positions the model can attend over.
    #[arg(long = "n_positions", env = "LORABEAM_FIXTURE_N_POSITIONS", default_value_t = 256)]
    pub n_positions: usize,
    /// LoRA rank of the checkpoint.
    #[arg(long = "lora_dim", env = "LORABEAM_FIXTURE_LORA_DIM", default_value_t = 4)]
    pub lora_dim: usize,
    /// LoRA alpha of the checkpoint.
    #[arg(long = "lora_alpha", env = "LORABEAM_FIXTURE_LORA_ALPHA", default_value_t = 32.0)]
    pub lora_alpha: f64,
    /// Seed for the weights and the sample data.
    #[arg(long, env = "LORABEAM_FIXTURE_SEED", default_value_t = 1234)]
    pub seed: u64,
    /// Lines of sample data (about one in four repeats an earlier context).
    #[arg(long, env = "LORABEAM_FIXTURE_LINES", default_value_t = 48)]
    pub lines: usize,
}

pub fn fixture(args: FixtureArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let config = Gpt2Config {
        vocab_size: lorabeam_core::ModelLimits::GPT2.vocab_size,
        n_positions: args.n_positions,
        n_embd: args.n_embd,
        n_layer: args.n_layer,
        n_head: args.n_head,
        layer_norm_epsilon: 1e-5,
    };
    anyhow::ensure!(args.n_head > 0 && args.n_embd % args.n_head == 0, "n_embd must be a multiple of n_head");
    let lora = LoraConfig { rank: args.lora_dim, alpha: args.lora_alpha, base_only: false };
    let tensors = synthetic_checkpoint(&config, lora, args.seed as i64);
    save_torch_checkpoint(&args.out.join("lora_full.pt"), &tensors)?;
    std::fs::write(args.out.join("config.json"), config_json(&config))?;

    let mut sample = std::fs::File::create(args.out.join("sample.jsonl"))?;
    let mut rng = args.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move |bound: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % bound
    };
    let mut contexts: Vec<Vec<u64>> = Vec::new();
    for _ in 0..args.lines {
        let context = if !contexts.is_empty() && next(4) == 0 {
            contexts[next(contexts.len() as u64) as usize].clone()
        } else {
            let len = 5 + next(30);
            let mut c: Vec<u64> = (0..len).map(|_| next(50256)).collect();
            c.push(50256);
            c
        };
        let completion: Vec<u64> = (0..1 + next(12)).map(|_| next(50256)).chain([50256]).collect();
        writeln!(sample, "{{\"context\": {context:?}, \"completion\": {completion:?}}}")?;
        contexts.push(context);
    }
    crate::errln!(
        "wrote {}/lora_full.pt (n_embd {}, n_layer {}, n_head {}, lora r={} alpha={}), config.json and sample.jsonl ({} lines)",
        args.out.display(),
        args.n_embd,
        args.n_layer,
        args.n_head,
        args.lora_dim,
        args.lora_alpha,
        args.lines
    );
    Ok(())
}
