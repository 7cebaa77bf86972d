//! Seeded random GPT-2 + LoRA weights in gpt2_ft.py's checkpoint layout, for demos, tests and
//! benchmarks on machines without pretrained weights.

use std::sync::Mutex;

use tch::{Device, Kind, Tensor};

use super::{AdaptedMatrix, AdaptedModule, Adapter, Gpt2Config, LoraConfig, LowRank};

/// libtorch's default generator is one per process: two threads seeding and drawing at once
/// (tests run in parallel) would interleave their draws. Everything here that seeds it and
/// draws holds this lock, so a seed always gives the same tensors.
static TORCH_RNG: Mutex<()> = Mutex::new(());

/// Seeds libtorch's generator with `seed` and keeps it for the caller until the guard drops.
pub fn hold_seeded_rng(seed: i64) -> std::sync::MutexGuard<'static, ()> {
    let held = TORCH_RNG.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    tch::manual_seed(seed);
    held
}

/// Runs `draw` with libtorch's generator seeded with `seed`, and no other seeded draw at once.
pub fn seeded<T>(seed: i64, draw: impl FnOnce() -> T) -> T {
    let _held = hold_seeded_rng(seed);
    draw()
}

/// Every tensor gpt2_ft.py's final checkpoint holds, with its `module.` names: the
/// transformer's parameters (normal(0, 0.02) like the reference's init), non-zero LoRA
/// factors, the causal-mask buffers and the tied `lm_head`.
pub fn synthetic_checkpoint(config: &Gpt2Config, lora: LoraConfig, seed: i64) -> Vec<(String, Tensor)> {
    seeded(seed, || draw_checkpoint(config, lora))
}

fn draw_checkpoint(config: &Gpt2Config, lora: LoraConfig) -> Vec<(String, Tensor)> {
    let opts = (Kind::Float, Device::Cpu);
    let (e, v, p) = (config.n_embd as i64, config.vocab_size as i64, config.n_positions as i64);
    let normal = |shape: &[i64]| Tensor::randn(shape, opts) * 0.02;
    let mut out = Vec::new();
    let mut put = |name: String, t: Tensor| out.push((format!("module.transformer.{name}"), t));
    let wte = normal(&[v, e]);
    put("wte.weight".into(), wte.shallow_clone());
    put("wpe.weight".into(), normal(&[p, e]) * 0.5);
    for i in 0..config.n_layer {
        let h = format!("h.{i}");
        for ln in ["ln_1", "ln_2"] {
            put(format!("{h}.{ln}.weight"), Tensor::ones([e], opts));
            put(format!("{h}.{ln}.bias"), Tensor::zeros([e], opts));
        }
        put(format!("{h}.attn.bias"), Tensor::ones([p, p], opts).tril(0).view([1, 1, p, p]));
        put(format!("{h}.attn.c_attn.weight"), normal(&[e, 3 * e]));
        put(format!("{h}.attn.c_attn.bias"), Tensor::zeros([3 * e], opts));
        if lora.rank > 0 {
            let r = lora.rank as i64;
            put(format!("{h}.attn.c_attn.lora_A"), Tensor::randn([2 * r, e], opts) / (e as f64).sqrt());
            put(format!("{h}.attn.c_attn.lora_B"), Tensor::randn([2 * e, r], opts) * 0.01);
        }
        put(format!("{h}.attn.c_proj.weight"), normal(&[e, e]));
        put(format!("{h}.attn.c_proj.bias"), Tensor::zeros([e], opts));
        put(format!("{h}.mlp.c_fc.weight"), normal(&[e, 4 * e]));
        put(format!("{h}.mlp.c_fc.bias"), Tensor::zeros([4 * e], opts));
        put(format!("{h}.mlp.c_proj.weight"), normal(&[4 * e, e]));
        put(format!("{h}.mlp.c_proj.bias"), Tensor::zeros([e], opts));
    }
    put("ln_f.weight".into(), Tensor::ones([e], opts));
    put("ln_f.bias".into(), Tensor::zeros([e], opts));
    out.push(("module.lm_head.decoder.weight".into(), wte));
    out
}

/// The HF-style `config.json` text for `config`.
pub fn config_json(config: &Gpt2Config) -> String {
    format!(
        "{{\n \"model_type\": \"gpt2\",\n \"vocab_size\": {},\n \"n_positions\": {},\n \"n_ctx\": {},\n \
         \"n_embd\": {},\n \"n_layer\": {},\n \"n_head\": {},\n \"layer_norm_epsilon\": {:e},\n \
         \"activation_function\": \"gelu_new\"\n}}\n",
        config.vocab_size,
        config.n_positions,
        config.n_positions,
        config.n_embd,
        config.n_layer,
        config.n_head,
        config.layer_norm_epsilon
    )
}

/// A seeded random adapter of rank `rank` on `modules` of every block of `config`: factors
/// normal(0, 0.02), scaling 2, one part over all columns (PEFT's layout).
pub fn random_adapter(config: &Gpt2Config, modules: &[AdaptedModule], rank: i64, seed: i64) -> Adapter {
    seeded(seed, || {
        let opts = (Kind::Double, Device::Cpu);
        let mut matrices = Vec::new();
        for layer in 0..config.n_layer {
            for &module in modules {
                let (n_in, n_out) = module.shape(config.n_embd as i64);
                let a = Tensor::randn([rank, n_in], opts) * 0.02;
                let part = LowRank { column: 0, a, b: Tensor::randn([n_out, rank], opts) * 0.02 };
                matrices.push(AdaptedMatrix { layer, module, scaling: 2.0, parts: vec![part] });
            }
        }
        Adapter { path: "random".into(), base_shape: (config.n_embd, config.n_layer), matrices }
    })
}
