//! Every checkpoint layout users have gives the same predictions: gpt2_ft.py's full
//! checkpoint; a pretrained base (`pytorch_model.bin` or `model.safetensors`) plus
//! gpt2_ft.py's LoRA-only checkpoint. The base alone (`--lora_dim 0`) must differ.

use crate::support;

use support::*;

const FLAGS: &str = "--beam 4 --no_repeat_ngram_size 4 --eos_token_id 628 --eval_len 24 --seq_len 256 \
                     --batch_size 1 --dtype f64 --max_rows 200";

fn predict(dir: &std::path::Path, name: &str, checkpoint_flags: &[String], lora: bool) -> String {
    let data = head(&conformance_dir().join("data/e2e_test_public.jsonl"), 24, dir, "data.jsonl");
    let mut args = strings(&["--data", data.to_str().expect("utf-8")]);
    args.extend_from_slice(checkpoint_flags);
    let config = fixture("config.json");
    args.extend(strings(&["--model_config", config.to_str().expect("utf-8")]));
    if lora {
        args.extend(strings(&["--lora_dim", "4", "--lora_alpha", "32"]));
    }
    args.extend(FLAGS.split_whitespace().map(String::from));
    std::fs::read_to_string(run_ok(&args, dir, name)).expect("read predictions")
}

fn path(name: &str) -> String {
    fixture(name).to_str().expect("utf-8").to_string()
}

#[test]
fn all_layouts_agree_and_lora_matters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let full = predict(d, "full.jsonl", &[s("--init_checkpoint"), path("lora_full.pt")], true);
    let bin = predict(
        d,
        "bin.jsonl",
        &[s("--init_checkpoint"), path("lora_only.pt"), s("--base_checkpoint"), path("base_pytorch_model.bin")],
        true,
    );
    let safetensors = predict(
        d,
        "safetensors.jsonl",
        &[s("--init_checkpoint"), path("lora_only.pt"), s("--base_checkpoint"), path("base_model.safetensors")],
        true,
    );
    let legacy = legacy_tf_named_base(d);
    let legacy_bin = predict(
        d,
        "legacy.jsonl",
        &[s("--init_checkpoint"), path("lora_only.pt"), s("--base_checkpoint"), legacy],
        true,
    );
    let base_only = predict(d, "base.jsonl", &[s("--init_checkpoint"), path("base_model.safetensors")], false);
    assert_eq!(full.lines().count(), 24);
    assert_eq!(full, bin, "pytorch_model.bin + LoRA-only differs from the full checkpoint");
    assert_eq!(full, safetensors, "model.safetensors + LoRA-only differs from the full checkpoint");
    assert_eq!(full, legacy_bin, "a legacy pytorch_model.bin with TF names + LoRA-only differs");
    let same = full.lines().zip(base_only.lines()).filter(|(a, b)| a == b).count();
    assert!(same < 12, "LoRA changed only {} of 24 predictions", 24 - same);
}

fn s(v: &str) -> String {
    v.to_string()
}

/// The base re-saved as the original pretrained GPT-2 files are: the legacy (pre-1.6)
/// `torch.save` stream, with TF-converted `.g` / `.b` names on the layer norms.
fn legacy_tf_named_base(dir: &std::path::Path) -> String {
    let out = dir.join("legacy_pytorch_model.bin");
    let python = std::env::var("PYTHON_SYS_EXECUTABLE").unwrap_or_else(|_| "python3".into());
    let script = "import sys, torch\n\
                  sd = torch.load(sys.argv[1], weights_only=True)\n\
                  tf = {}\n\
                  for k, v in sd.items():\n    \
                      if '.ln_' in k or k.startswith('ln_f'):\n        \
                          k = k.replace('.weight', '.g').replace('.bias', '.b')\n    \
                      tf[k] = v\n\
                  torch.save(tf, sys.argv[2], _use_new_zipfile_serialization=False)";
    let status = std::process::Command::new(python)
        .args(["-c", script])
        .arg(fixture("base_pytorch_model.bin"))
        .arg(&out)
        .status()
        .expect("python runs");
    assert!(status.success(), "could not write the legacy checkpoint");
    out.to_str().expect("utf-8").to_string()
}
