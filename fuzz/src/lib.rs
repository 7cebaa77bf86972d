//! What the fuzz targets share: the memory and stack limits that turn runaway inputs into
//! crashes (`guard`), the structured inputs and how they become bytes (`pickle_prog`,
//! `zip_forge`, `peft_json`), and how seeds are written from structures (`tape`).

pub mod guard;
pub mod peft_json;
pub mod pickle_prog;
pub mod tape;
pub mod zip_forge;

/// A size or count from `v`, at most `max`: `v`'s top byte picks a number of bits `e` (up to
/// `max`'s), and the top `e` of its low 24 bits are the number. A uniform pick would almost
/// always be near `max`, and every input slow (a 100,000-deep nesting, a 10 MiB string); this
/// way 5 is as likely as 50,000, and one changed byte turns either into the other.
pub fn scaled(v: u32, max: u32) -> u32 {
    let e = (v >> 24) % (33 - max.leading_zeros()).min(25);
    ((v & 0xff_ffff) >> (24 - e)).min(max)
}

/// The `v` for which `scaled` gives `n` (for seeds; `n` below 2^24).
pub fn unscaled(n: u32) -> u32 {
    assert!(n < 1 << 24);
    let e = 32 - n.leading_zeros();
    (e << 24) | (n << (24 - e))
}

/// Checks a seed meant to be a valid checkpoint is one: the reader finds its one tensor.
pub fn expect_one_tensor(bytes: &[u8]) {
    match lorabeam_worker::checkpoint::parse_torch_bytes("seed.pt", bytes) {
        Ok(dict) if dict.tensors.len() == 1 => {}
        Ok(dict) => panic!("a valid seed reads as {} tensors, not 1", dict.tensors.len()),
        Err(e) => panic!("a valid seed does not read: {e}"),
    }
}
