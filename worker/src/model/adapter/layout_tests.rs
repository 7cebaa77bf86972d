//! Each layout a user might give as an adapter that is none, refused through `Adapter::load`
//! with its own message: what the path holds and what to pass instead.

use std::path::Path;

use tch::{Device, Kind, Tensor};

use super::load::Adapter;
use super::tests::{peft_dir, tiny};
use crate::checkpoint::save_torch_checkpoint;
use crate::model::{config_json, synthetic_checkpoint, LoraConfig};

fn refusal(path: &Path) -> String {
    match Adapter::load(path, &tiny(), 8.0) {
        Ok(_) => panic!("{} was accepted", path.display()),
        Err(err) => err.to_string(),
    }
}

fn checkpoint(rank: usize) -> Vec<(String, Tensor)> {
    synthetic_checkpoint(&tiny(), LoraConfig { rank, alpha: 8.0, base_only: rank == 0 }, 3)
}

#[test]
fn a_peft_weights_file_points_at_its_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    peft_dir(dir.path(), "", [2, 8]);
    let file = dir.path().join("adapter_model.safetensors");
    let expected = format!(
        "adapter {} is a PEFT adapter's weights file; pass its folder {} (which holds adapter_config.json)",
        file.display(),
        dir.path().display()
    );
    assert_eq!(refusal(&file), expected);
    assert!(Adapter::load(dir.path(), &tiny(), 8.0).is_ok(), "the folder loads");

    // adapter_model.bin, in a folder that lost its config.
    let lone = tempfile::tempdir().expect("tempdir");
    let tensors = Tensor::read_safetensors(&file).expect("read");
    let bin = lone.path().join("adapter_model.bin");
    save_torch_checkpoint(&bin, &tensors).expect("save");
    let err = refusal(&bin);
    assert!(
        err.contains(
            "is a PEFT adapter's weights file; pass the folder peft saved it in, with its adapter_config.json"
        ) && err.contains(&format!("({} has none)", lone.path().display())),
        "{err}"
    );
    // Given the folder instead: the config is missing.
    let err = refusal(lone.path());
    assert!(err.contains("holds adapter_model.bin but no adapter_config.json: the PEFT adapter's config is missing"));
}

#[test]
fn checkpoints_that_are_no_adapter_say_what_they_are() {
    let dir = tempfile::tempdir().expect("tempdir");
    let full = dir.path().join("full.pt");
    save_torch_checkpoint(&full, &checkpoint(2)).expect("save");
    let err = refusal(&full);
    assert!(err.contains("is a full gpt2_ft.py checkpoint") && err.contains("--lora_dim 2"), "{err}");

    let base = dir.path().join("base.pt");
    save_torch_checkpoint(&base, &checkpoint(0)).expect("save");
    let err = refusal(&base);
    assert!(err.contains("holds GPT-2's weights (`") && err.contains("no LoRA: a base model"), "{err}");
    assert!(err.contains("pass it with --base_checkpoint"), "{err}");

    let odd = dir.path().join("odd.safetensors");
    let tensors = vec![("encoder.layer.0.weight".to_string(), Tensor::ones([2, 2], (Kind::Float, Device::Cpu)))];
    Tensor::write_safetensors(&tensors, &odd).expect("write");
    let err = refusal(&odd);
    assert!(err.contains("holds `encoder.layer.0.weight`, which is neither a LoRA factor nor a GPT-2 weight"), "{err}");

    let none = dir.path().join("none.pt");
    save_torch_checkpoint(&none, &[]).expect("save");
    assert!(refusal(&none).contains("none.pt holds no tensors lorabeam reads"));
}

#[test]
fn files_of_other_kinds_say_what_they_are() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty.pt");
    std::fs::write(&empty, b"").expect("write");
    assert_eq!(refusal(&empty), format!("adapter {} is an empty file", empty.display()));

    let text = dir.path().join("notes.txt");
    std::fs::write(&text, b"not a checkpoint at all").expect("write");
    let err = refusal(&text);
    assert!(err.contains("notes.txt is neither a torch.save archive nor a safetensors file"), "{err}");

    let device = Path::new("/dev/null");
    assert_eq!(refusal(device), "adapter /dev/null is neither a regular file nor a folder");

    peft_dir(dir.path(), "", [2, 8]);
    let config = dir.path().join("adapter_config.json");
    let expected = format!("is a PEFT adapter's config; pass its folder {}", dir.path().display());
    assert!(refusal(&config).ends_with(&expected), "{}", refusal(&config));
}

#[test]
fn folders_without_a_peft_config_say_what_they_are() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = refusal(dir.path());
    assert!(
        err.ends_with(
            "is an empty folder; a PEFT adapter's folder holds adapter_config.json and \
                           adapter_model.safetensors (or .bin)"
        ),
        "{err}"
    );

    std::fs::write(dir.path().join("config.json"), config_json(&tiny())).expect("write");
    let err = refusal(dir.path());
    assert!(err.contains("is a folder without adapter_config.json"), "{err}");

    let base: Vec<(String, Tensor)> = checkpoint(0).into_iter().filter(|(n, _)| !n.contains("lm_head")).collect();
    Tensor::write_safetensors(&base, dir.path().join("model.safetensors")).expect("write");
    let err = refusal(dir.path());
    let weights = dir.path().join("model.safetensors");
    assert!(
        err.contains("is a Hugging Face model folder (config.json, model.safetensors): a full model, not an adapter")
            && err.contains(&format!("pass {} with --base_checkpoint", weights.display())),
        "{err}"
    );
    // Its weights file, given as an adapter: a base model.
    assert!(refusal(&weights).contains("no LoRA: a base model"));
}
