//! Broken checkpoints and inputs get a clear, specific error, a failing exit status, and no
//! predictions file.

use crate::support;

use std::path::{Path, PathBuf};

use lorabeam_worker::checkpoint::{load_state_dict, save_torch_checkpoint};
use support::*;
use tch::{Kind, Tensor};

/// Runs `lorabeam run` expecting failure; returns stderr and checks no output appeared.
fn run_err(dir: &Path, data: &Path, checkpoint_flags: &[String]) -> String {
    let mut args = strings(&["run", "--device", "cpu", "--threads", "1", "--data", data.to_str().expect("utf-8")]);
    args.extend_from_slice(checkpoint_flags);
    args.extend(tiny_model_args());
    args.extend(strings(&["--beam", "2", "--eval_len", "8", "--seq_len", "64", "--work_dir"]));
    args.push(dir.join("out").to_str().expect("utf-8").to_string());
    let out = lorabeam(&args);
    assert!(!out.status.success(), "lorabeam {args:?} should fail");
    assert!(!dir.join("out/beam_prediction.jsonl").exists(), "a predictions file was left behind");
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn init(path: &Path) -> Vec<String> {
    strings(&["--init_checkpoint", path.to_str().expect("utf-8")])
}

fn good_data(dir: &Path) -> PathBuf {
    head(&conformance_dir().join("data/e2e_test_public.jsonl"), 3, dir, "data.jsonl")
}

/// lora_full.pt with `edit` applied, saved in gpt2_ft.py's layout.
fn edited_checkpoint(dir: &Path, edit: impl FnOnce(&mut Vec<(String, Tensor)>)) -> PathBuf {
    let state = load_state_dict(&fixture("lora_full.pt")).expect("fixture loads");
    let mut tensors: Vec<(String, Tensor)> = state.tensors.into_iter().collect();
    edit(&mut tensors);
    let path = dir.join("edited.pt");
    save_torch_checkpoint(&path, &tensors).expect("save");
    path
}

const C_FC: &str = "module.transformer.h.1.mlp.c_fc.weight";

#[test]
fn truncated_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = std::fs::read(fixture("lora_full.pt")).expect("read");
    let cut = dir.path().join("cut.pt");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).expect("write");
    let err = run_err(dir.path(), &good_data(dir.path()), &init(&cut));
    assert!(err.contains("cut.pt is corrupt or truncated"), "{err}");
}

#[test]
fn wrong_shape_names_tensor_and_shapes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ckpt = edited_checkpoint(dir.path(), |t| {
        let entry = t.iter_mut().find(|(n, _)| n == C_FC).expect("c_fc");
        entry.1 = Tensor::zeros([64, 255], (Kind::Float, tch::Device::Cpu));
    });
    let err = run_err(dir.path(), &good_data(dir.path()), &init(&ckpt));
    assert!(err.contains("`h.1.mlp.c_fc.weight`") && err.contains("[64, 255], expected [64, 256]"), "{err}");
}

#[test]
fn missing_tensor_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ckpt = edited_checkpoint(dir.path(), |t| t.retain(|(n, _)| n != C_FC));
    let err = run_err(dir.path(), &good_data(dir.path()), &init(&ckpt));
    assert!(err.contains("tensor `h.1.mlp.c_fc.weight` is missing"), "{err}");
}

#[test]
fn integer_or_nan_weights_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ckpt = edited_checkpoint(dir.path(), |t| {
        let entry = t.iter_mut().find(|(n, _)| n == C_FC).expect("c_fc");
        entry.1 = Tensor::zeros([64, 256], (Kind::Int64, tch::Device::Cpu));
    });
    let err = run_err(dir.path(), &good_data(dir.path()), &init(&ckpt));
    assert!(err.contains("has dtype Int64, expected a floating-point dtype"), "{err}");

    let ckpt = edited_checkpoint(dir.path(), |t| {
        let entry = t.iter_mut().find(|(n, _)| n == C_FC).expect("c_fc");
        entry.1 = Tensor::full([64, 256], f64::NAN, (Kind::Float, tch::Device::Cpu));
    });
    let err = run_err(dir.path(), &good_data(dir.path()), &init(&ckpt));
    assert!(err.contains("holds NaN or infinite values"), "{err}");
}

#[test]
fn lora_only_without_base_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = run_err(dir.path(), &good_data(dir.path()), &init(&fixture("lora_only.pt")));
    assert!(err.contains("holds only LoRA tensors") && err.contains("--base_checkpoint"), "{err}");
}

#[test]
fn lora_dim_without_lora_tensors_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = run_err(dir.path(), &good_data(dir.path()), &init(&fixture("base_model.safetensors")));
    assert!(err.contains("--lora_dim 4 was given but `h.0.attn.c_attn.lora_A`"), "{err}");
}

#[test]
fn bad_input_lines_name_file_line_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("bad.jsonl");
    std::fs::write(
        &data,
        "{\"context\": [1, 2], \"completion\": [3]}\nnot json\n{\"completion\": [1]}\n{\"context\": [1, 60000]}\n{\"context\": []}\n",
    )
    .expect("write");
    let err = run_err(dir.path(), &data, &init(&fixture("lora_full.pt")));
    for expected in [
        "bad.jsonl has 4 bad line(s)",
        "bad.jsonl:2: not JSON",
        "bad.jsonl:3: field `context` is missing",
        "bad.jsonl:4: field `context`: token id 60000 at index 1 is outside the vocabulary (0..50257)",
        "bad.jsonl:5: field `context` is empty",
    ] {
        assert!(err.contains(expected), "missing `{expected}` in:\n{err}");
    }
}

#[test]
fn bad_decoding_parameters_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = good_data(dir.path());
    let mut args = strings(&["run", "--device", "cpu", "--data", data.to_str().expect("utf-8")]);
    args.extend(init(&fixture("lora_full.pt")));
    args.extend(tiny_model_args());
    args.extend(strings(&["--eval_len", "300", "--seq_len", "512"]));
    let out = lorabeam(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--seq_len 512 exceeds the model's 256 positions"), "{err}");
}

/// What lorabeam writes in gpt2_ft.py's layout, PyTorch itself reads (with `weights_only`).
#[test]
fn written_checkpoints_load_in_pytorch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ckpt = edited_checkpoint(dir.path(), |_| {});
    let python = std::env::var("PYTHON_SYS_EXECUTABLE").unwrap_or_else(|_| "python3".into());
    let script = "import sys, torch\n\
                  sd = torch.load(sys.argv[1], weights_only=True)['model_state_dict']\n\
                  w = sd['module.transformer.h.1.mlp.c_fc.weight']\n\
                  print(len(sd), tuple(w.shape), float(w.double().sum()))";
    let out = std::process::Command::new(python).args(["-c", script]).arg(&ckpt).output().expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "torch.load failed: {}", String::from_utf8_lossy(&out.stderr));
    let state = load_state_dict(&fixture("lora_full.pt")).expect("fixture loads");
    let expected = f64::try_from(state.tensors[C_FC].to_kind(Kind::Double).sum(Kind::Double)).expect("sum");
    let fields: Vec<&str> = stdout.split_whitespace().collect();
    assert_eq!(fields[0].parse::<usize>().expect("count"), state.tensors.len());
    assert_eq!(fields[1..3].join(" "), "(64, 256)");
    assert_eq!(fields[3].parse::<f64>().expect("sum"), expected);
}
