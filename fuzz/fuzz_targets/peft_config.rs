//! `check_peft_config` on adapter_config.json texts built from structured fields (see
//! peft_json): it may refuse them with an error; never panic, hang, or blow up on a regex,
//! a number or a nesting.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lorabeam_fuzz::guard::{init, on_worker_stack};
use lorabeam_fuzz::peft_json::{seeds, PeftIn};
use lorabeam_worker::model::Gpt2Config;

fuzz_target!(init: init(seeds), |input: PeftIn| {
    let json = input.json();
    let config = Gpt2Config {
        vocab_size: 50257,
        n_positions: 1024,
        n_embd: 768,
        n_layer: input.n_layer(),
        n_head: 12,
        layer_norm_epsilon: 1e-5,
    };
    on_worker_stack(|| {
        let _ = lorabeam_worker::model::adapter::check_peft_config(json.as_bytes(), &config);
    });
});
