//! An HF PEFT adapter's `adapter_config.json` on arbitrary bytes: the whole parse and check
//! (targets, patterns, ranks, alphas, scalings) for a gpt2.sm base; it may refuse them, never
//! panic, hang or allocate beyond the input's size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lorabeam_worker::model::adapter::check_peft_config;
use lorabeam_worker::model::Gpt2Config;

fuzz_target!(|data: &[u8]| {
    let gpt2_sm =
        Gpt2Config { vocab_size: 50257, n_positions: 1024, n_embd: 768, n_layer: 12, n_head: 12, layer_norm_epsilon: 1e-5 };
    let _ = check_peft_config(data, &gpt2_sm);
});
