use super::*;
use tch::{Device, Kind};

fn sample() -> Vec<(String, Tensor)> {
    let _rng = crate::model::hold_seeded_rng(3);
    vec![
        ("module.transformer.wte.weight".to_string(), Tensor::randn([5, 3], (Kind::Float, Device::Cpu))),
        ("module.transformer.h.0.attn.bias".to_string(), Tensor::ones([1, 1, 4, 4], (Kind::Float, Device::Cpu))),
        ("scale".to_string(), Tensor::from_slice(&[1.5f64])),
    ]
}

#[test]
fn written_checkpoint_reads_back_identically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ckpt.pt");
    let tensors = sample();
    save_torch_checkpoint(&path, &tensors).expect("save");
    let state = load_state_dict(&path).expect("load");
    assert_eq!(state.tensors.len(), tensors.len());
    for (name, tensor) in &tensors {
        let read = &state.tensors[name];
        assert_eq!(read.kind(), tensor.kind(), "{name}");
        assert!(read.equal(tensor), "{name}");
    }
}

#[test]
fn truncated_archive_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ckpt.pt");
    save_torch_checkpoint(&path, &sample()).expect("save");
    let bytes = std::fs::read(&path).expect("read");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("truncate");
    let err = load_state_dict(&path).err().expect("truncated file must fail");
    assert!(matches!(err, CheckpointError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("ckpt.pt"), "{err}");
}

#[test]
fn unknown_bytes_and_broken_legacy_streams_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let junk = dir.path().join("junk.bin");
    std::fs::write(&junk, b"hello, not a checkpoint").expect("write");
    assert!(matches!(load_state_dict(&junk), Err(CheckpointError::UnknownFormat { .. })));
    let legacy = dir.path().join("legacy.bin");
    std::fs::write(&legacy, [0x80, 0x02, 0x8a, 0x0a]).expect("write");
    let err = load_state_dict(&legacy).err().expect("a cut legacy stream must fail");
    assert!(matches!(err, CheckpointError::Corrupt { .. }), "{err}");
    std::fs::write(&legacy, [0x80, 0x02, 0x4b, 0x07, b'.']).expect("write");
    let err = load_state_dict(&legacy).err().expect("a pickle of 7 is no torch.save stream");
    assert!(err.to_string().contains("bad magic number"), "{err}");
    let missing = dir.path().join("missing.pt");
    assert!(matches!(load_state_dict(&missing), Err(CheckpointError::Io { .. })));
}

#[test]
fn pickle_with_unknown_opcode_is_corrupt_not_a_panic() {
    let err = pickle::parse(&[0x80, 0x02, b'}', 0xff]).expect_err("0xff is no opcode");
    assert!(err.to_string().contains("0xff"), "{err}");
    let err = pickle::parse(&[0x80, 0x02, b'X', 0xff, 0xff, 0xff, 0x7f]).expect_err("string past the end");
    assert!(err.to_string().contains("ends inside"), "{err}");
}
