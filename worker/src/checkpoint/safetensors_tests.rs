//! The safetensors validation: a real file round-trips, and each broken rule is refused by name.

use super::*;
use tch::{Device, Kind};

/// A safetensors file of `header` (JSON) and `data`.
fn file(header: &str, data: &[u8]) -> Vec<u8> {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    bytes
}

fn refused(bytes: &[u8]) -> CheckpointError {
    match parse_safetensors_bytes("bad.safetensors", bytes) {
        Ok(state) => panic!("accepted, with {} tensors", state.tensors.len()),
        Err(e) => e,
    }
}

#[test]
fn safetensors_written_by_tch_read_back_identically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("model.safetensors");
    let a = Tensor::arange(6, (Kind::Float, Device::Cpu)).reshape([2, 3]);
    let b = Tensor::from_slice(&[1i64, -2]);
    let empty = Tensor::zeros([0, 4], (Kind::Half, Device::Cpu));
    Tensor::write_safetensors(&[("a", &a), ("b", &b), ("empty", &empty)], &path).expect("write");
    let bytes = std::fs::read(&path).expect("read");
    for state in [parse_safetensors_bytes("m", &bytes).expect("parse"), load_state_dict(&path).expect("load")] {
        assert_eq!(state.tensors.len(), 3);
        assert!(state.tensors["a"].equal(&a) && state.tensors["b"].equal(&b));
        assert_eq!(state.tensors["empty"].size(), [0, 4]);
    }
}

#[test]
fn metadata_and_padding_are_accepted() {
    let header =
        r#"{"__metadata__":{"format":"pt","shape":"x"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}   "#;
    let state = parse_safetensors_bytes("m", &file(header, &[0; 8])).expect("parse");
    assert_eq!(state.tensors["w"].size(), [2]);
}

#[test]
fn header_lengths_beyond_the_file_or_the_limit_are_refused() {
    let mut bytes = 100u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    assert!(refused(&bytes).to_string().contains("a header of 100 bytes in a file of 10"));
    let mut bytes = (u64::MAX).to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    let err = refused(&bytes);
    assert!(matches!(err, CheckpointError::OverLimit { .. }), "{err}");
    assert!(err.to_string().contains("more than 1048576"), "{err}");
    assert!(refused(&[1, 2, 3]).to_string().contains("shorter than its header length"));
}

#[test]
fn each_broken_rule_is_named() {
    let w = |dtype: &str, shape: &str, offsets: &str| {
        format!(r#""w":{{"dtype":"{dtype}","shape":{shape},"data_offsets":{offsets}}}"#)
    };
    let cases = [
        (format!("{{{}}}", w("F32", "[4294967296,4294967296]", "[0,0]")), 0, "the size of shape"),
        (format!("{{{}}}", w("F32", "[2]", "[0,4]")), 4, "needs 8 bytes, its data has 4"),
        (format!("{{{}}}", w("F32", "[2]", "[8,0]")), 8, "are not a range"),
        (format!("{{{}}}", w("F8_E4M3", "[2]", "[0,2]")), 2, "unsupported dtype F8_E4M3"),
        (format!("{{{}}}", w("F32", "[2]", "[0,8]")), 4, "cover 8 bytes of data, the file holds 4"),
        (format!("{{{}}}", w("F32", "[2]", "[0,8]")), 12, "cover 8 bytes of data, the file holds 12"),
        (format!("{{{}}}", w("F32", "[-1]", "[0,0]")), 0, "safetensors header: invalid value"),
        (format!("{{{}}}", w("F32", &format!("[{}]", ["1"; 26].join(",")), "[0,4]")), 4, "more than 25 dimensions"),
        (format!("{{{},{}}}", w("F32", "[1]", "[0,4]"), w("F32", "[1]", "[0,4]")), 4, "named twice"),
        (
            format!(r#"{{{},"v":{{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}}}"#, w("F32", "[2]", "[0,8]")),
            12,
            "`v`: its data overlaps",
        ),
        (
            format!(r#"{{{},"v":{{"dtype":"F32","shape":[1],"data_offsets":[12,16]}}}}"#, w("F32", "[2]", "[0,8]")),
            16,
            "`v`: its data leaves a gap",
        ),
        ("{} x".to_string(), 0, "trailing characters"),
        ("[1, 2]".to_string(), 0, "a JSON object of tensors"),
    ];
    for (header, data_len, expected) in cases {
        let err = refused(&file(&header, &vec![0; data_len]));
        assert!(err.to_string().contains(expected), "{header}: {err}");
        assert!(err.to_string().len() < 400, "{err}");
    }
}

#[test]
fn deeply_nested_header_json_is_skipped_without_recursion() {
    // What is not read (`__metadata__`, unknown fields) is skipped by serde_json's iterative
    // skipper, so 100,000 levels cost no stack; a small stack proves it.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let header =
        format!(r#"{{"__metadata__":{deep},"w":{{"extra":{deep},"dtype":"F32","shape":[1],"data_offsets":[0,4]}}}}"#);
    let bytes = file(&header, &[0; 4]);
    let run = std::thread::Builder::new().stack_size(256 * 1024).spawn(move || {
        parse_safetensors_bytes("deep.safetensors", &bytes).map(|s| s.tensors.len()).map_err(|e| e.to_string())
    });
    assert_eq!(run.expect("spawn").join().expect("no stack overflow"), Ok(1));
}
