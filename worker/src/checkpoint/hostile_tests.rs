//! One test per way a hostile probe drove the readers out of bounds, each building its bytes
//! here and asserting the specific refusal.

use super::test_support::{floats, legacy_stream, torch_zip, zip_bytes, PickleBytes, TensorSpec, ZipEntry};
use super::*;

/// `n` tuples nested in each other around `None`.
fn nested_tuples(n: usize) -> Vec<u8> {
    let mut bytes = vec![0x80, 0x02];
    bytes.extend(std::iter::repeat_n(b'(', n));
    bytes.push(b'N');
    bytes.extend(std::iter::repeat_n(b't', n));
    bytes.push(b'.');
    bytes
}

fn refusal(result: Result<StateDict, CheckpointError>) -> CheckpointError {
    match result {
        Ok(state) => panic!("accepted, with {} tensors", state.tensors.len()),
        Err(e) => e,
    }
}

#[test]
fn hundred_thousand_nested_tuples_are_refused_on_a_small_stack() {
    let deep = nested_tuples(100_000);
    let zipped = torch_zip(&deep, &[]);
    // 256 KiB: a recursive parse, drop, clone or print of 100,000 levels would overflow it.
    let run = std::thread::Builder::new().stack_size(256 * 1024).spawn(move || {
        let direct = pickle::parse(&deep).map(|p| p.len());
        let as_legacy = parse_torch_bytes("deep.pt", &deep).map(|s| s.tensors.len());
        let as_zip = parse_torch_bytes("deep.pt", &zipped).map(|s| s.tensors.len());
        (direct.map_err(|e| e.to_string()), as_legacy.map_err(|e| e.to_string()), as_zip)
    });
    let (direct, as_legacy, as_zip) = run.expect("spawn").join().expect("no stack overflow");
    assert_eq!(direct, Err("pickle: values nest more than 100 deep".to_string()));
    assert!(as_legacy.is_err_and(|e| e.contains("nest more than 100 deep")));
    let err = as_zip.expect_err("refused");
    assert!(matches!(err, CheckpointError::OverLimit { .. }), "{err}");
    assert_eq!(err.to_string(), "checkpoint deep.pt is refused: pickle: values nest more than 100 deep");
}

#[test]
fn nesting_up_to_the_limit_parses_and_one_more_is_refused() {
    let p = pickle::parse(&nested_tuples(100)).expect("100 deep is allowed");
    assert_eq!(p.len(), 101);
    let err = pickle::parse(&nested_tuples(101)).expect_err("101 deep is not");
    assert!(matches!(err, Malformed::OverLimit(_)), "{err}");
}

/// A list memoized, then each level a new list holding the previous one twice: a tree of 2^22
/// lists if memo values were copied.
fn memo_bomb(levels: u8) -> Vec<u8> {
    let mut bytes = vec![0x80, 0x02, b']', b'q', 0];
    for level in 1..=levels {
        bytes.extend_from_slice(&[b']', b'(', b'h', level - 1, b'h', level - 1, b'e', b'q', level]);
    }
    bytes.push(b'.');
    bytes
}

#[test]
fn memo_bomb_is_shared_not_copied() {
    let bomb = memo_bomb(22);
    let p = pickle::parse(&bomb).expect("parses within the bound");
    assert_eq!(p.len(), 23, "one value per list built, none copied");
    let pickle::Value::List(top) = p.get(p.root()) else { panic!("root is a list") };
    assert_eq!(top.len(), 2);
    assert_eq!(top[0], top[1], "both items are the same shared value");
    let err = refusal(parse_torch_bytes("bomb.pt", &torch_zip(&bomb, &[])));
    assert!(err.to_string().contains("root is not a dict"), "{err}");
}

#[test]
fn materialized_size_is_bounded_by_the_input() {
    // 100,000 one-byte Nones would take ~60 bytes each: refused once past 32 per byte read.
    let mut nones = vec![0x80, 0x02];
    nones.extend(std::iter::repeat_n(b'N', 100_000));
    nones.push(b'.');
    let err = pickle::parse(&nones).expect_err("refused");
    assert!(matches!(err, Malformed::OverLimit(ref d) if d.contains("more than 32 bytes per byte read")), "{err}");
    // Strings count by their bytes: two of 1000 bytes pass the default bound, not a tight one.
    let mut p = PickleBytes::new();
    p.op(b'(').str(&"x".repeat(1000)).str(&"y".repeat(1000)).op(b't').op(b'.');
    assert!(pickle::parse(&p.0).is_ok());
    let tight = pickle::Limits { bytes_per_byte: 1, bytes_slack: 0, ..pickle::Limits::default() };
    let err = pickle::parse_with(&p.0, tight).expect_err("refused");
    assert!(matches!(err, Malformed::OverLimit(ref d) if d.contains("more than 1 bytes per byte")), "{err}");
}

#[test]
fn pickles_longer_than_the_limit_are_refused() {
    let mut p = PickleBytes::new();
    p.str(&"x".repeat(pickle::MAX_PICKLE_BYTES)).op(b'.');
    let err = pickle::parse(&p.0).expect_err("refused");
    assert!(matches!(err, Malformed::OverLimit(ref d) if d == "pickle: longer than 16777216 bytes"), "{err}");
}

#[test]
fn memoized_containers_filled_later_are_seen_filled() {
    // torch.save memoizes an empty dict or list, then fills it: {'a': [1, 2], 'b': <same list>}.
    let mut p = PickleBytes::new();
    p.op(b'}').op(b'q').op(0).op(b'(').str("a").op(b']').op(b'q').op(1);
    p.op(b'(').op(b'K').op(1).op(b'K').op(2).op(b'e').str("b").op(b'h').op(1).op(b'u').op(b'.');
    let p = pickle::parse(&p.0).expect("parses");
    let pickle::Value::Dict(entries) = p.get(p.root()) else { panic!("a dict") };
    let [(_, a), (_, b)] = entries.as_slice() else { panic!("two entries") };
    assert_eq!(a, b);
    assert!(matches!(p.get(*b), pickle::Value::List(items) if items.len() == 2));
}

#[test]
fn containers_changed_after_use_and_cycles_are_refused() {
    // A list put in a tuple, then appended to; a list appended to itself.
    let after_use = [0x80, 2, b']', b'q', 0, b'(', b'h', 0, b't', b'h', 0, b'K', 1, b'a', b'.'];
    let err = pickle::parse(&after_use).expect_err("refused");
    assert!(err.to_string().contains("APPEND changes a container already used"), "{err}");
    let cycle = [0x80, 2, b']', b'q', 0, b'h', 0, b'a', b'.'];
    let err = pickle::parse(&cycle).expect_err("refused");
    assert!(err.to_string().contains("already used"), "{err}");
}

#[test]
fn state_dicts_of_too_many_entries_are_refused() {
    let mut p = PickleBytes::new();
    p.op(b'}').op(b'(');
    for i in 0..=MAX_TENSORS {
        p.str(&i.to_string()).op(b'N');
    }
    p.op(b'u').op(b'.');
    let err = refusal(parse_torch_bytes("many.pt", &torch_zip(&p.0, &[])));
    assert!(matches!(err, CheckpointError::OverLimit { .. }), "{err}");
    assert!(err.to_string().contains("a state dict of 65537 entries, more than 65536"), "{err}");
}

#[test]
fn zip64_entry_claiming_a_terabyte_is_refused_before_allocating() {
    let pkl = PickleBytes::state_dict(&[TensorSpec {
        name: "w",
        key: "0",
        numel: 1 << 38,
        size: &[1 << 38],
        stride: &[1],
        offset: 0,
    }]);
    let data = floats(4);
    let mut storage = ZipEntry::stored("archive/data/0", &data);
    storage.claimed_size = Some(1 << 40);
    let bytes = zip_bytes(&[ZipEntry::stored("archive/data.pkl", &pkl), storage]);
    let err = refusal(parse_torch_bytes("huge.pt", &bytes));
    assert!(matches!(err, CheckpointError::Corrupt { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("entry archive/data/0: claims 1099511627776 bytes, more than the archive"), "{text}");
}

#[test]
fn compressed_or_inconsistent_entries_are_refused() {
    let pkl = PickleBytes::state_dict(&[]);
    let mut deflated = ZipEntry::stored("archive/data.pkl", &pkl);
    deflated.method = 8;
    let err = refusal(parse_torch_bytes("deflate.pt", &zip_bytes(&[deflated])));
    assert!(err.to_string().contains("entry archive/data.pkl"), "{err}");
    assert!(err.to_string().to_lowercase().contains("compress"), "{err}");
}

#[test]
fn entries_sharing_their_bytes_are_refused_past_the_archive_length() {
    // 64 storages of 4 KiB whose directory entries all point at the first one's bytes.
    let data = floats(1024);
    let names: Vec<String> = (0..64).map(|k| format!("archive/data/{k}")).collect();
    let keys: Vec<String> = (0..64).map(|k| k.to_string()).collect();
    let specs: Vec<TensorSpec> = keys
        .iter()
        .map(|k| TensorSpec { name: k, key: k, numel: 1024, size: &[1024], stride: &[1], offset: 0 })
        .collect();
    let pkl = PickleBytes::state_dict(&specs);
    let mut entries = vec![ZipEntry::stored("archive/data.pkl", &pkl)];
    for (k, name) in names.iter().enumerate() {
        let mut e = ZipEntry::stored(name, &data);
        e.same_data_as = (k > 0).then_some(1);
        entries.push(e);
    }
    let bytes = zip_bytes(&entries);
    let err = refusal(parse_torch_bytes("overlap.pt", &bytes));
    assert!(err.to_string().contains("entries overlap"), "{err}");
}

fn one_tensor(size: &[i64], stride: &[i64], offset: i64, numel: i64) -> Vec<u8> {
    let spec = TensorSpec { name: "w", key: "0", numel, size, stride, offset };
    let pkl = PickleBytes::state_dict(&[spec]);
    let data = floats(numel.clamp(0, 64) as usize);
    torch_zip(&pkl, &[("0", &data)])
}

#[test]
fn stride_of_two_to_the_62_is_refused_before_libtorch_sees_it() {
    let err = refusal(parse_torch_bytes("stride.pt", &one_tensor(&[3], &[1 << 62], 0, 4)));
    let text = err.to_string();
    assert!(text.contains("tensor `w`: invalid tensor geometry"), "{text}");
    assert!(text.contains("reads past its storage of 4 elements"), "{text}");
    assert!(!text.contains("Exception raised") && text.len() < 300, "{text}");
}

#[test]
fn overflowing_or_oversized_geometry_is_refused() {
    // size, stride, offset, storage elements, the refusal
    type Case = (&'static [i64], &'static [i64], i64, i64, &'static str);
    let cases: [Case; 5] = [
        (&[1 << 32, 1 << 32, 0], &[0, 0, 0], 0, 4, "element count of size"),
        (&[8], &[1], 0, 4, "8 elements at offset 0 in a storage of 4"),
        (&[2], &[1], 1 << 40, 4, "at offset 1099511627776"),
        (&[2], &[-1], 0, 4, "negative size, stride or offset"),
        (&[2, 2], &[1], 0, 4, "2 sizes but 1 strides"),
    ];
    for (size, stride, offset, numel, expected) in cases {
        let err = refusal(parse_torch_bytes("geometry.pt", &one_tensor(size, stride, offset, numel)));
        assert!(err.to_string().contains(expected), "{size:?} {stride:?}: {err}");
    }
    let dims = [1i64; 26];
    let err = refusal(parse_torch_bytes("dims.pt", &one_tensor(&dims, &dims, 0, 4)));
    assert!(matches!(err, CheckpointError::OverLimit { .. }), "{err}");
    let err = refusal(parse_torch_bytes("negative.pt", &one_tensor(&[1], &[1], 0, -1)));
    assert!(err.to_string().contains("storage 0 claims -1 elements"), "{err}");
}

#[test]
fn legacy_storage_lengths_are_checked_against_the_file() {
    let root =
        PickleBytes::state_dict(&[TensorSpec { name: "w", key: "k", numel: 4, size: &[4], stride: &[1], offset: 0 }]);
    let data = floats(4);
    let good = legacy_stream(&root, &["k"], &[(4, &data)]);
    let state = parse_torch_bytes("legacy.bin", &good).expect("a valid legacy stream loads");
    assert_eq!(state.tensors["w"].size(), [4]);
    for numel in [5, 1 << 62, u64::MAX] {
        let bad = legacy_stream(&root, &["k"], &[(numel, &data)]);
        let err = refusal(parse_torch_bytes("legacy.bin", &bad));
        assert!(err.to_string().contains("storage k runs past the end of the file"), "{numel}: {err}");
    }
}

#[test]
fn libtorch_errors_are_cut_to_their_first_line() {
    let storage = Tensor::zeros([4], (tch::Kind::Float, tch::Device::Cpu));
    let e = storage.f_as_strided([10], [1], 0).expect_err("out of bounds");
    let full = e.to_string();
    let line = torch_error_line(&e);
    assert!(!line.is_empty() && !line.contains('\n') && line.len() <= 300, "{line}");
    assert!(!line.contains("Exception raised from") && !line.contains("frame #"), "{line}");
    assert!(line.contains("out of bounds"), "{line}");
    assert!(full.contains("Exception raised from"), "libtorch's text holds its backtrace: {full}");
    assert_eq!(short_torch_error(&e), line);
    let shown = crate::model::ModelError::from(e).to_string();
    assert_eq!(shown, format!("libtorch: {line}"));
}
