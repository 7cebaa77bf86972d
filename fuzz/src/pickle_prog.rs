//! Pickle streams as programs: a list of opcodes (those checkpoint/pickle.rs reads, with their
//! operands, plus any byte), some of them whole torch idioms (a storage reference, a
//! `_rebuild_tensor_v2` call), and `Repeat` blocks so that a few bytes of input reach 100,000
//! nested tuples or 20 doublings of a memoized value. `PickleIn` wraps the program as
//! `torch.save` would: a zip archive with `archive/data.pkl` and its storages, or the legacy
//! stream of five pickles and raw storages.

use std::io::Write;

use crate::tape::{seed, Blob};
use crate::{scaled, tape_enum, tape_struct, unscaled};

/// The most a `Repeat` runs its body, and the most bytes a program serializes to: enough for
/// nesting that overflows any thread's stack, small enough to parse in well under a second.
pub const MAX_REPEAT: u32 = 200_000;
pub const MAX_PICKLE: usize = 4 << 20;

/// Strings a torch checkpoint uses, so that the fuzzer need not spell them.
const NAMES: &[&str] = &[
    "storage",
    "cpu",
    "model_state_dict",
    "state_dict",
    "0",
    "1",
    "little_endian",
    "transformer.h.0.attn.c_attn.lora_A",
    "transformer.wte.weight",
];

/// Globals a torch checkpoint uses (and two it must never resolve).
const GLOBALS: &[(&str, &str)] = &[
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("collections", "OrderedDict"),
    ("torch", "FloatStorage"),
    ("torch", "LongStorage"),
    ("builtins", "set"),
    ("os", "system"),
];

/// Storage types: those the reader knows, then one it does not.
const STORAGES: &[&str] = &[
    "FloatStorage",
    "DoubleStorage",
    "HalfStorage",
    "BFloat16Storage",
    "LongStorage",
    "IntStorage",
    "ShortStorage",
    "CharStorage",
    "ByteStorage",
    "BoolStorage",
    "ComplexFloatStorage",
];

fn pick<T: Copy>(list: &[T], which: u8) -> T {
    list[usize::from(which) % list.len()]
}

tape_enum! {
    /// One opcode and its operands.
    pub enum Op {
        Proto { version: u8 },
        Frame { len: u64 },
        Stop,
        Mark,
        None,
        NewTrue,
        NewFalse,
        BinInt { v: i32 },
        BinInt1 { v: u8 },
        BinInt2 { v: u16 },
        /// LONG1: the length byte counts at most 255 of the bytes.
        Long1 { bytes: Blob },
        BinFloat { v: f64 },
        BinUnicode { s: Blob },
        ShortBinUnicode { s: Blob },
        ShortBinBytes { b: Blob },
        BinBytes { b: Blob },
        /// SHORT_BINUNICODE of a name from `NAMES`.
        Name { which: u8 },
        EmptyTuple,
        Tuple,
        Tuple1,
        Tuple2,
        Tuple3,
        EmptyList,
        Append,
        Appends,
        EmptyDict,
        SetItem,
        SetItems,
        /// GLOBAL of a pair from `GLOBALS`.
        Global { which: u8 },
        GlobalText { module: Blob, name: Blob },
        StackGlobal,
        Reduce,
        BinPersId,
        Build,
        BinPut { key: u8 },
        LongBinPut { key: u32 },
        Memoize,
        BinGet { key: u8 },
        LongBinGet { key: u32 },
        /// Any byte, as an opcode of its own (most are ones the reader refuses).
        Byte { b: u8 },
        /// `('storage', torch.<kind>, key, 'cpu', numel)` BINPERSID.
        Storage { kind: u8, key: u8, numel: u32 },
        /// `_rebuild_tensor_v2(<storage>, offset, size, stride, False, OrderedDict())`.
        Tensor { kind: u8, key: u8, numel: u32, offset: u32, size: Vec<u16>, stride: Vec<u16> },
    }
}

tape_enum! {
    pub enum Item {
        Op { op: Op },
        /// `body` written `scaled(count, MAX_REPEAT)` times.
        Repeat { count: u32, body: Vec<Op> },
    }
}

tape_struct! {
    /// A storage entry: `archive/data/<key>`, or in a legacy stream the storage `key` with an
    /// element count of `bytes.len() / 4`.
    pub struct StorageIn {
        pub key: u8,
        pub bytes: Blob,
    }
}

tape_struct! {
    pub struct PickleIn {
        /// The legacy stream rather than the zip archive.
        pub legacy: bool,
        pub storages: Vec<StorageIn>,
        pub program: Vec<Item>,
    }
}

/// Pickle bytes, written as pickle.rs reads them.
#[derive(Default)]
pub struct Writer(pub Vec<u8>);

impl Writer {
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn short_str(&mut self, s: &[u8]) {
        let s = &s[..s.len().min(255)];
        self.0.extend_from_slice(&[0x8c, s.len() as u8]);
        self.0.extend_from_slice(s);
    }
    fn global(&mut self, module: &[u8], name: &[u8]) {
        self.0.push(b'c');
        for part in [module, name] {
            self.0.extend_from_slice(part);
            self.0.push(b'\n');
        }
    }
    fn int(&mut self, v: u32) {
        self.0.push(b'J');
        self.u32(v);
    }
    fn int_tuple(&mut self, values: &[u16]) {
        self.0.push(b'(');
        values.iter().for_each(|&v| self.int(u32::from(v)));
        self.0.push(b't');
    }

    pub fn op(&mut self, op: &Op) {
        let out = &mut self.0;
        match op {
            Op::Proto { version } => out.extend_from_slice(&[0x80, *version]),
            Op::Frame { len } => {
                out.push(0x95);
                out.extend_from_slice(&len.to_le_bytes());
            }
            Op::Stop => out.push(b'.'),
            Op::Mark => out.push(b'('),
            Op::None => out.push(b'N'),
            Op::NewTrue => out.push(0x88),
            Op::NewFalse => out.push(0x89),
            Op::BinInt { v } => {
                out.push(b'J');
                out.extend_from_slice(&v.to_le_bytes());
            }
            Op::BinInt1 { v } => out.extend_from_slice(&[b'K', *v]),
            Op::BinInt2 { v } => {
                out.push(b'M');
                out.extend_from_slice(&v.to_le_bytes());
            }
            Op::Long1 { bytes } => {
                // The length byte is the input's own, so it may claim more than follows.
                let n = bytes.0.first().copied().unwrap_or(0);
                out.extend_from_slice(&[0x8a, n]);
                out.extend_from_slice(bytes.0.get(1..).unwrap_or_default());
            }
            Op::BinFloat { v } => {
                out.push(b'G');
                out.extend_from_slice(&v.to_be_bytes());
            }
            Op::BinUnicode { s } => {
                out.push(b'X');
                self.u32(s.0.len() as u32);
                self.0.extend_from_slice(&s.0);
            }
            Op::ShortBinUnicode { s } => self.short_str(&s.0),
            Op::ShortBinBytes { b } => {
                let b = &b.0[..b.0.len().min(255)];
                out.extend_from_slice(&[b'C', b.len() as u8]);
                out.extend_from_slice(b);
            }
            Op::BinBytes { b } => {
                out.push(b'B');
                self.u32(b.0.len() as u32);
                self.0.extend_from_slice(&b.0);
            }
            Op::Name { which } => self.short_str(pick(NAMES, *which).as_bytes()),
            Op::EmptyTuple => out.push(b')'),
            Op::Tuple => out.push(b't'),
            Op::Tuple1 => out.push(0x85),
            Op::Tuple2 => out.push(0x86),
            Op::Tuple3 => out.push(0x87),
            Op::EmptyList => out.push(b']'),
            Op::Append => out.push(b'a'),
            Op::Appends => out.push(b'e'),
            Op::EmptyDict => out.push(b'}'),
            Op::SetItem => out.push(b's'),
            Op::SetItems => out.push(b'u'),
            Op::Global { which } => {
                let (module, name) = pick(GLOBALS, *which);
                self.global(module.as_bytes(), name.as_bytes());
            }
            Op::GlobalText { module, name } => self.global(&module.0, &name.0),
            Op::StackGlobal => out.push(0x93),
            Op::Reduce => out.push(b'R'),
            Op::BinPersId => out.push(b'Q'),
            Op::Build => out.push(b'b'),
            Op::BinPut { key } => out.extend_from_slice(&[b'q', *key]),
            Op::LongBinPut { key } => {
                out.push(b'r');
                self.u32(*key);
            }
            Op::Memoize => out.push(0x94),
            Op::BinGet { key } => out.extend_from_slice(&[b'h', *key]),
            Op::LongBinGet { key } => {
                out.push(b'j');
                self.u32(*key);
            }
            Op::Byte { b } => out.push(*b),
            Op::Storage { kind, key, numel } => self.storage(*kind, *key, *numel),
            Op::Tensor { kind, key, numel, offset, size, stride } => {
                self.global(b"torch._utils", b"_rebuild_tensor_v2");
                self.0.push(b'(');
                self.storage(*kind, *key, *numel);
                self.int(*offset);
                self.int_tuple(size);
                self.int_tuple(stride);
                self.0.push(0x89);
                self.global(b"collections", b"OrderedDict");
                self.0.extend_from_slice(b")Rt");
                self.0.push(b'R');
            }
        }
    }

    fn storage(&mut self, kind: u8, key: u8, numel: u32) {
        self.0.push(b'(');
        self.short_str(b"storage");
        self.global(b"torch", pick(STORAGES, kind).as_bytes());
        self.short_str(key.to_string().as_bytes());
        self.short_str(b"cpu");
        self.int(numel);
        self.0.extend_from_slice(b"tQ");
    }

    /// The program between `PROTO 2` and a final `STOP`, cut off at `MAX_PICKLE` bytes.
    pub fn program(items: &[Item]) -> Vec<u8> {
        let mut w = Writer(vec![0x80, 2]);
        'items: for item in items {
            let (body, count) = match item {
                Item::Op { op } => (std::slice::from_ref(op), 1),
                Item::Repeat { count, body } => (&body[..], scaled(*count, MAX_REPEAT)),
            };
            for _ in 0..count {
                for op in body {
                    w.op(op);
                }
                if body.is_empty() || w.0.len() > MAX_PICKLE {
                    break;
                }
            }
            if w.0.len() > MAX_PICKLE {
                break 'items;
            }
        }
        w.0.push(b'.');
        w.0
    }
}

impl PickleIn {
    /// The bytes `parse_torch_bytes` reads.
    pub fn container(&self) -> Vec<u8> {
        let pickle = Writer::program(&self.program);
        if self.legacy {
            legacy_stream(&pickle, &self.storages)
        } else {
            let mut entries =
                vec![("archive/data.pkl".to_string(), pickle), ("archive/byteorder".into(), b"little".to_vec())];
            for s in &self.storages {
                entries.push((format!("archive/data/{}", s.key), s.bytes.0.clone()));
            }
            torch_zip(&entries)
        }
    }
}

/// A zip archive of stored entries, as torch.save writes them (through the zip crate).
pub fn torch_zip(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in entries {
        // Duplicate names (two storages with one key) are refused by the writer: keep the first.
        if zip.start_file(name.as_str(), stored).is_ok() {
            zip.write_all(bytes).expect("write to memory");
        }
    }
    zip.finish().expect("finish an in-memory zip").into_inner()
}

/// `torch.save`'s legacy stream: magic number, protocol version, system info, `object`, the
/// storage keys, then each storage as a `u64` element count and its bytes.
pub fn legacy_stream(object: &[u8], storages: &[StorageIn]) -> Vec<u8> {
    const MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
    let mut out = vec![0x80, 2, 0x8a, 10];
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(b".\x80\x02M\xe9\x03.\x80\x02}.");
    out.extend_from_slice(object);
    let mut keys = Writer(b"\x80\x02](".to_vec());
    storages.iter().for_each(|s| keys.short_str(s.key.to_string().as_bytes()));
    keys.0.extend_from_slice(b"e.");
    out.extend_from_slice(&keys.0);
    for s in storages {
        out.extend_from_slice(&(s.bytes.0.len() as u64 / 4).to_le_bytes());
        out.extend_from_slice(&s.bytes.0);
    }
    out
}

/// `{'model_state_dict': {name: tensor}}` with one float tensor of `numel` elements over storage
/// 0, as the worker's own writer lays it out.
pub fn state_dict_program(numel: u16) -> Vec<Item> {
    let ops = vec![
        Op::EmptyDict,
        Op::Name { which: 2 },
        Op::EmptyDict,
        Op::Mark,
        Op::Name { which: 7 },
        Op::Tensor { kind: 0, key: 0, numel: u32::from(numel), offset: 0, size: vec![numel], stride: vec![1] },
        Op::SetItems,
        Op::SetItem,
    ];
    ops.into_iter().map(|op| Item::Op { op }).collect()
}

fn floats(n: u16) -> Blob {
    Blob((0..n).flat_map(|i| (f32::from(i) * 0.5).to_le_bytes()).collect())
}

/// Seeds: a valid checkpoint (both containers), a small nesting and a small memo reuse. None
/// of them crashes; the fuzzer has to grow the nesting and the reuse itself.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let valid = |legacy| PickleIn {
        legacy,
        storages: vec![StorageIn { key: 0, bytes: floats(4) }],
        program: state_dict_program(4),
    };
    let op = |op| Item::Op { op };
    // `(((None,),),)`... 50 deep, via TUPLE1; and 50 MARKs closed by 50 TUPLEs.
    let nesting = PickleIn {
        legacy: false,
        storages: vec![],
        program: vec![
            op(Op::None),
            Item::Repeat { count: unscaled(50), body: vec![Op::Tuple1] },
            Item::Repeat { count: unscaled(50), body: vec![Op::Mark] },
            op(Op::None),
            Item::Repeat { count: unscaled(50), body: vec![Op::Tuple] },
            op(Op::Tuple2),
        ],
    };
    // x = []; then three times x = [x, x] through the memo: 2^3 leaves.
    let memo = PickleIn {
        legacy: false,
        storages: vec![],
        program: vec![
            op(Op::EmptyList),
            op(Op::BinPut { key: 0 }),
            Item::Repeat {
                count: unscaled(3),
                body: vec![
                    Op::EmptyList,
                    Op::BinGet { key: 0 },
                    Op::Append,
                    Op::BinGet { key: 0 },
                    Op::Append,
                    Op::BinPut { key: 0 },
                ],
            },
        ],
    };
    for legacy in [false, true] {
        crate::expect_one_tensor(&valid(legacy).container());
    }
    vec![
        ("valid_zip", seed(&valid(false))),
        ("valid_legacy", seed(&valid(true))),
        ("nesting_50", seed(&nesting)),
        ("memo_reuse_3", seed(&memo)),
    ]
}
