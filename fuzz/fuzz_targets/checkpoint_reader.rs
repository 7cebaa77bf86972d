//! The checkpoint reader (zip container, legacy stream, pickle, tensor storages) on arbitrary
//! bytes: it may refuse them, never crash, hang or execute anything. The structured targets
//! (pickle_stream, torch_zip) reach deep inputs; this one mutates real files byte by byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lorabeam_fuzz::guard::{init, on_worker_stack};

/// A checkpoint written by the worker's own writer, and the same tensors as a legacy stream.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let path = std::env::temp_dir().join(format!("lorabeam-fuzz-seed-{}.pt", std::process::id()));
    let tensor = tch::Tensor::from_slice(&[0.0f32, 0.5, 1.0, 1.5]);
    lorabeam_worker::checkpoint::save_torch_checkpoint(&path, &[("transformer.h.0.attn.c_attn.lora_A".into(), tensor)])
        .expect("write a checkpoint");
    let saved = std::fs::read(&path).expect("read it back");
    let _ = std::fs::remove_file(&path);
    let legacy = lorabeam_fuzz::pickle_prog::PickleIn {
        legacy: true,
        storages: vec![lorabeam_fuzz::pickle_prog::StorageIn {
            key: 0,
            bytes: lorabeam_fuzz::tape::Blob([0, 0, 0, 0, 0, 0, 0, 63, 0, 0, 128, 63, 0, 0, 192, 63].to_vec()),
        }],
        program: lorabeam_fuzz::pickle_prog::state_dict_program(4),
    };
    vec![("saved_by_worker.pt", saved), ("legacy.pt", legacy.container())]
}

fuzz_target!(init: init(seeds), |data: &[u8]| {
    on_worker_stack(|| {
        let _ = lorabeam_worker::checkpoint::parse_torch_bytes("fuzz.pt", data);
    });
});
