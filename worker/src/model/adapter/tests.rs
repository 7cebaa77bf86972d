//! Adapters: each refusal with its message, the merge of a loralib adapter equal, bit for bit,
//! to the merge `--init_checkpoint` does at load, and its low-rank form equal to that merge.

use std::path::Path;

use tch::{Device, Kind, Tensor};

use super::load::Adapter;
use super::math::AdapterMath;
use super::matrix::AdaptedModule;
use super::prepared::{AdaptedWeight, AdapterWeights};
use crate::checkpoint::save_torch_checkpoint;
use crate::model::{synthetic_checkpoint, weights_from_tensors, Gpt2, Gpt2Config, LoraConfig, Precision};

pub(super) fn tiny() -> Gpt2Config {
    Gpt2Config { vocab_size: 64, n_positions: 32, n_embd: 8, n_layer: 2, n_head: 2, layer_norm_epsilon: 1e-5 }
}

/// A PEFT adapter on `c_attn` of every layer, rank 2, with `config` merged into its config.
pub(super) fn peft_dir(dir: &Path, extra: &str, a_shape: [i64; 2]) {
    let config = format!(r#"{{"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["c_attn"]{extra}}}"#);
    std::fs::write(dir.join("adapter_config.json"), config).expect("write config");
    let mut tensors = Vec::new();
    for layer in 0..2 {
        let key = format!("base_model.model.transformer.h.{layer}.attn.c_attn");
        tensors.push((format!("{key}.lora_A.weight"), Tensor::ones(a_shape, (Kind::Float, Device::Cpu))));
        tensors.push((format!("{key}.lora_B.weight"), Tensor::ones([24, 2], (Kind::Float, Device::Cpu))));
    }
    Tensor::write_safetensors(&tensors, dir.join("adapter_model.safetensors")).expect("write tensors");
}

fn refusal(extra: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    peft_dir(dir.path(), extra, [2, 8]);
    match Adapter::load(dir.path(), &tiny(), 1.0) {
        Ok(_) => panic!("{extra} was accepted"),
        Err(err) => err.to_string(),
    }
}

#[test]
fn a_valid_peft_adapter_loads() {
    let dir = tempfile::tempdir().expect("tempdir");
    peft_dir(dir.path(), r#", "use_rslora": true, "bias": "none", "use_dora": false"#, [2, 8]);
    let adapter = Adapter::load(dir.path(), &tiny(), 1.0).expect("valid");
    assert_eq!(adapter.matrices.len(), 2);
    // rsLoRA: alpha / sqrt(r).
    assert!((adapter.matrices[0].scaling - 4.0 / 2f64.sqrt()).abs() < 1e-15);
}

#[test]
fn unsupported_options_are_refused_by_name() {
    for (extra, field) in [
        (r#", "use_dora": true"#, "`use_dora`"),
        (r#", "modules_to_save": ["lm_head"]"#, "`modules_to_save`"),
        (r#", "layers_to_transform": [0]"#, "`layers_to_transform`"),
        (r#", "lora_bias": true"#, "`lora_bias`"),
        (r#", "bias": "all""#, "`bias`"),
        (r#", "peft_type": "IA3""#, "`peft_type`"),
    ] {
        let message = refusal(extra);
        assert!(message.contains(field) && message.contains("adapter_config.json"), "{extra}: {message}");
    }
}

#[test]
fn target_modules_gpt2_lacks_or_lorabeam_cannot_adapt_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (targets, expect) in [
        (r#"["q_proj"]"#, "`q_proj` is not a module of GPT-2"),
        (r#"["c_attn", "wte"]"#, "matches `transformer.wte`, which lorabeam cannot adapt"),
        (r#"".*ln_1""#, "matches `transformer.h.0.ln_1`"),
    ] {
        peft_dir(dir.path(), "", [2, 8]);
        let config = format!(r#"{{"r": 2, "lora_alpha": 4, "target_modules": {targets}}}"#);
        std::fs::write(dir.path().join("adapter_config.json"), config).expect("write");
        let err = Adapter::load(dir.path(), &tiny(), 1.0).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("`target_modules`") && err.contains(expect), "{targets}: {err}");
    }
}

#[test]
fn an_adapter_for_another_base_shape_names_the_tensor_and_both_shapes() {
    let dir = tempfile::tempdir().expect("tempdir");
    peft_dir(dir.path(), "", [2, 16]);
    let err = Adapter::load(dir.path(), &tiny(), 1.0).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        err.contains("base_model.model.transformer.h.0.attn.c_attn.lora_A.weight")
            && err.contains("[2, 8]")
            && err.contains("[2, 16]"),
        "{err}"
    );
    let mut deeper = tiny();
    deeper.n_layer = 1;
    peft_dir(dir.path(), "", [2, 8]);
    let err = Adapter::load(dir.path(), &deeper, 1.0).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("h.1.attn.c_attn.lora_A.weight") && err.contains("1-layer"), "{err}");
}

#[test]
fn a_missing_adapter_is_refused() {
    let err = Adapter::load(Path::new("/nonexistent/adapter"), &tiny(), 1.0).err().map(|e| e.to_string());
    assert!(err.unwrap_or_default().contains("/nonexistent/adapter does not exist"));
}

/// The model of `--init_checkpoint` with LoRA merged at load, and the same model's base with
/// the LoRA-only tensors as an adapter: the merged `c_attn` matrices are the same bits.
#[test]
fn a_loralib_adapter_merges_exactly_as_the_load_time_merge() {
    let config = tiny();
    let lora = LoraConfig { rank: 2, alpha: 8.0, base_only: false };
    let tensors = synthetic_checkpoint(&config, lora, 3);
    let copy = |t: &[(String, Tensor)]| -> Vec<(String, Tensor)> {
        t.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect()
    };
    for precision in [Precision::F64, Precision::F32] {
        let merged = weights_from_tensors(&config, lora, copy(&tensors), precision, Device::Cpu).expect("merged");
        let base_only = LoraConfig { rank: 0, alpha: 8.0, base_only: true };
        let base = weights_from_tensors(&config, base_only, copy(&tensors), precision, Device::Cpu).expect("base");
        let base = Gpt2::new(config.clone(), base, precision, Device::Cpu).with_adapter_math(AdapterMath::Merged);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("lora_only.pt");
        let lora_only: Vec<(String, Tensor)> =
            copy(&tensors).into_iter().filter(|(n, _)| n.ends_with("lora_A") || n.ends_with("lora_B")).collect();
        save_torch_checkpoint(&path, &lora_only).expect("save");
        let adapter = Adapter::load(&path, &config, 8.0).expect("loralib adapter");
        let weights = AdapterWeights::prepare(&base, &adapter, "a").expect("merge");
        let blocks = weights.borrow_blocks();
        for (layer, block) in merged.blocks.iter().enumerate() {
            let Some(AdaptedWeight::Merged(ours)) = blocks[layer].get(AdaptedModule::CAttn) else {
                panic!("c_attn not merged")
            };
            assert!(ours.equal(&block.c_attn.weight), "layer {layer} differs at {precision:?}");
            assert!(blocks[layer].get(AdaptedModule::CFc).is_none());
        }
        assert_eq!(weights.bytes(), 2 * 8 * 24 * precision.bytes());
        // The base itself is untouched: the merge wrote into copies.
        let unmerged = weights_from_tensors(&config, base_only, copy(&tensors), precision, Device::Cpu).expect("base");
        for (layer, block) in unmerged.blocks.iter().enumerate() {
            assert!(base.weights().blocks[layer].c_attn.weight.equal(&block.c_attn.weight), "base changed");
        }
    }
}

/// The low-rank form of the same loralib adapter: one fused factor pair per `c_attn` whose
/// update is the merged one's (to f64 rounding), and nothing on the key columns.
#[test]
fn a_loralib_adapter_fuses_into_one_low_rank_pair() {
    let config = tiny();
    let lora = LoraConfig { rank: 2, alpha: 8.0, base_only: false };
    let tensors = synthetic_checkpoint(&config, lora, 3);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("lora_only.pt");
    let lora_only: Vec<(String, Tensor)> = tensors
        .iter()
        .filter(|(n, _)| n.ends_with("lora_A") || n.ends_with("lora_B"))
        .map(|(n, t)| (n.clone(), t.shallow_clone()))
        .collect();
    save_torch_checkpoint(&path, &lora_only).expect("save");
    let adapter = Adapter::load(&path, &config, 8.0).expect("loralib adapter");
    let model = |math| {
        let base_only = LoraConfig { rank: 0, alpha: 8.0, base_only: true };
        let copy = tensors.iter().map(|(n, t)| (n.clone(), t.shallow_clone())).collect();
        let weights = weights_from_tensors(&config, base_only, copy, Precision::F64, Device::Cpu).expect("base");
        Gpt2::new(config.clone(), weights, Precision::F64, Device::Cpu).with_adapter_math(math)
    };
    let (low, merged) = (model(AdapterMath::LowRank), model(AdapterMath::Merged));
    let low_blocks = AdapterWeights::prepare(&low, &adapter, "a").expect("low-rank").borrow_blocks();
    let merged_blocks = AdapterWeights::prepare(&merged, &adapter, "a").expect("merged").borrow_blocks();
    for layer in 0..config.n_layer {
        let Some(AdaptedWeight::LowRank { a_t, b_t }) = low_blocks[layer].get(AdaptedModule::CAttn) else {
            panic!("not low-rank")
        };
        let Some(AdaptedWeight::Merged(full)) = merged_blocks[layer].get(AdaptedModule::CAttn) else {
            panic!("not merged")
        };
        assert_eq!((a_t.size(), b_t.size()), (vec![8, 4], vec![4, 24]));
        let delta = full - &low.weights().blocks[layer].c_attn.weight;
        let diff = f64::try_from((a_t.mm(b_t) - delta).abs().max()).expect("scalar");
        assert!(diff < 1e-12, "layer {layer}: the factors differ from the merge by {diff}");
        assert_eq!(f64::try_from(b_t.narrow(1, 8, 8).abs().max()).expect("scalar"), 0.0, "keys adapted");
    }
}

#[test]
fn a_full_checkpoint_is_not_an_adapter() {
    let config = tiny();
    let lora = LoraConfig { rank: 2, alpha: 8.0, base_only: false };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("full.pt");
    save_torch_checkpoint(&path, &synthetic_checkpoint(&config, lora, 3)).expect("save");
    let err = Adapter::load(&path, &config, 8.0).err().map(|e| e.to_string()).unwrap_or_default();
    let fix = format!("decode it with --init_checkpoint {} --lora_dim 2", path.display());
    assert!(err.contains("full.pt is a full gpt2_ft.py checkpoint") && err.contains(&fix), "{err}");
}

fn load_error(path: &Path, alpha: f64) -> String {
    Adapter::load(path, &tiny(), alpha).err().map(|e| e.to_string()).unwrap_or_default()
}

#[test]
fn an_absurd_peft_alpha_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (alpha, extra, field, value) in [
        ("1e300", "", "`lora_alpha`", "1e300"),
        ("1e38", "", "`lora_alpha`", "1e38"),
        ("4", r#", "alpha_pattern": {"h.1.attn.c_attn": -3e6}"#, r#"`alpha_pattern["h.1.attn.c_attn"]`"#, "-3e6"),
        ("4", r#", "rank_pattern": {"c_attn": 9}"#, r#"`rank_pattern["c_attn"]`"#, "rank 9"),
    ] {
        peft_dir(dir.path(), "", [2, 8]);
        let config = format!(r#"{{"r": 2, "lora_alpha": {alpha}, "target_modules": ["c_attn"]{extra}}}"#);
        std::fs::write(dir.path().join("adapter_config.json"), config).expect("write");
        let message = load_error(dir.path(), 1.0);
        assert!(message.contains(field) && message.contains(value), "{extra}: {message}");
    }
}

/// Finite factors whose update no trained LoRA would make: refused naming the matrix, the
/// value and the bound, for PEFT and loralib alike.
#[test]
fn an_update_beyond_the_bound_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    peft_dir(dir.path(), "", [2, 8]);
    let key = "base_model.model.transformer.h.1.attn.c_attn.lora_B.weight";
    let mut tensors = Tensor::read_safetensors(dir.path().join("adapter_model.safetensors")).expect("read");
    for (name, tensor) in &mut tensors {
        if name == key {
            *tensor = Tensor::full([24, 2], 1e4, (Kind::Float, Device::Cpu));
        }
    }
    Tensor::write_safetensors(&tensors, dir.path().join("adapter_model.safetensors")).expect("write");
    // s = 4 / 2, B A = 2e4 everywhere: 4e4.
    let err = load_error(dir.path(), 1.0);
    assert!(err.contains("`h.1.attn.c_attn`") && err.contains("4e4") && err.contains("bound 1e3"), "{err}");

    let path = dir.path().join("lora_only.pt");
    let lora = LoraConfig { rank: 2, alpha: 8.0, base_only: false };
    let mut lora_only: Vec<(String, Tensor)> = synthetic_checkpoint(&tiny(), lora, 3)
        .into_iter()
        .filter(|(n, _)| n.ends_with("lora_A") || n.ends_with("lora_B"))
        .collect();
    save_torch_checkpoint(&path, &lora_only).expect("save");
    assert!(Adapter::load(&path, &tiny(), 8.0).is_ok());
    let err = load_error(&path, 1e300);
    assert!(err.contains("`--lora_alpha`") && err.contains("1e300"), "{err}");
    // The v part of layer 0 (columns 16..24) made huge.
    let b = &mut lora_only.iter_mut().find(|(n, _)| n.ends_with("h.0.attn.c_attn.lora_B")).expect("lora_B").1;
    let _ = b.narrow(0, 8, 8).fill_(1e6);
    save_torch_checkpoint(&path, &lora_only).expect("save");
    let err = load_error(&path, 8.0);
    assert!(err.contains("`h.0.attn.c_attn columns 16..24`") && err.contains("bound 1e3"), "{err}");
}
