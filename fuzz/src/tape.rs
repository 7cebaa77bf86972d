//! Seeds for the structure-aware targets. libFuzzer keeps inputs as bytes, and a target reads
//! its structure from them with `Arbitrary::arbitrary_take_rest`; a seed is written the other
//! way, from a structure, by `Tape::tape`. It follows arbitrary 1.5's layout: integers and
//! floats as little-endian bytes, a bool as one byte (its low bit), `Option` as a bool then the
//! value, an enum as a `u32` scaled onto its variants (`(v * count) >> 32`), a `Vec` as a 1
//! byte before each element and a 0 after the last. `tape_struct!` / `tape_enum!` declare a
//! type, derive `Arbitrary` and write its `Tape` in the same field order; `seed` checks each
//! seed reads back to itself, so a layout change in arbitrary fails loudly, not silently.

use std::fmt;

use arbitrary::{Arbitrary, Unstructured};

pub trait Tape {
    fn tape(&self, out: &mut Vec<u8>);
}

macro_rules! le_tape {
    ($($t:ty),*) => {
        $(impl Tape for $t {
            fn tape(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        })*
    };
}
le_tape!(u8, u16, u32, u64, i32, i64);

impl Tape for f64 {
    fn tape(&self, out: &mut Vec<u8>) {
        self.to_bits().tape(out);
    }
}

impl Tape for bool {
    fn tape(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
}

impl<T: Tape> Tape for Option<T> {
    fn tape(&self, out: &mut Vec<u8>) {
        self.is_some().tape(out);
        if let Some(v) = self {
            v.tape(out);
        }
    }
}

impl<T: Tape> Tape for Vec<T> {
    fn tape(&self, out: &mut Vec<u8>) {
        for item in self {
            out.push(1);
            item.tape(out);
        }
        out.push(0);
    }
}

impl<A: Tape, B: Tape> Tape for (A, B) {
    fn tape(&self, out: &mut Vec<u8>) {
        self.0.tape(out);
        self.1.tape(out);
    }
}

/// The `u32` that the derive maps onto variant `index` of `count`.
pub fn variant_tag(index: usize, count: usize) -> u32 {
    ((index as u64) << 32).div_ceil(count as u64) as u32
}

/// A byte string: a little-endian `u16` length, then that many bytes (fewer where the input
/// ends). Cheaper to mutate than arbitrary's own `Vec<u8>` (a continuation byte per byte) and
/// readable back by `Tape`, unlike its `String` (whose length depends on what follows).
#[derive(Clone, Default, PartialEq)]
pub struct Blob(pub Vec<u8>);

impl Blob {
    pub fn text(s: &str) -> Self {
        Blob(s.as_bytes().to_vec())
    }
}

impl<'a> Arbitrary<'a> for Blob {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let len = usize::from(u16::arbitrary(u)?).min(u.len());
        Ok(Blob(u.bytes(len)?.to_vec()))
    }
}

impl Tape for Blob {
    fn tape(&self, out: &mut Vec<u8>) {
        (self.0.len() as u16).tape(out);
        out.extend_from_slice(&self.0);
    }
}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

/// A struct whose `Arbitrary` is derived and whose `Tape` writes the same fields in order.
#[macro_export]
macro_rules! tape_struct {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(arbitrary::Arbitrary, Debug, Clone)]
        pub struct $name { $($(#[$fm])* pub $field: $ty),* }

        impl $crate::tape::Tape for $name {
            fn tape(&self, out: &mut Vec<u8>) {
                $($crate::tape::Tape::tape(&self.$field, out);)*
            }
        }
    };
}

/// An enum (unit or struct-like variants) whose `Arbitrary` is derived and whose `Tape` writes
/// the variant's tag then its fields.
#[macro_export]
macro_rules! tape_enum {
    ($(#[$m:meta])* pub enum $name:ident {
        $($(#[$vm:meta])* $var:ident $({ $($field:ident : $ty:ty),* $(,)? })?),* $(,)?
    }) => {
        $(#[$m])*
        #[derive(arbitrary::Arbitrary, Debug, Clone)]
        pub enum $name { $($(#[$vm])* $var $({ $($field: $ty),* })?),* }

        impl $crate::tape::Tape for $name {
            #[allow(unused_variables)]
            fn tape(&self, out: &mut Vec<u8>) {
                const NAMES: &[&str] = &[$(stringify!($var)),*];
                let tag = |name: &str| {
                    let index = NAMES.iter().position(|n| *n == name).expect("a variant of this enum");
                    $crate::tape::variant_tag(index, NAMES.len())
                };
                match self {
                    $($name::$var $({ $($field),* })? => {
                        $crate::tape::Tape::tape(&tag(stringify!($var)), out);
                        $($($crate::tape::Tape::tape($field, out);)*)?
                    })*
                }
            }
        }
    };
}

/// The bytes of one seed, checked to read back as `value`.
pub fn seed<T>(value: &T) -> Vec<u8>
where
    T: Tape + for<'a> Arbitrary<'a> + fmt::Debug,
{
    let mut bytes = Vec::new();
    value.tape(&mut bytes);
    let back = T::arbitrary_take_rest(Unstructured::new(&bytes)).expect("a seed reads back");
    assert_eq!(format!("{back:?}"), format!("{value:?}"), "a seed must read back as itself");
    bytes
}
