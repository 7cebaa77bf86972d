//! What the fuzz targets share: the memory and stack limits that turn runaway inputs into
//! crashes (`guard`), the structured inputs and how they become bytes (`pickle_prog`,
//! `zip_forge`, `peft_json`), and how seeds are written from structures (`tape`).

pub mod guard;
pub mod peft_json;
pub mod pickle_prog;
pub mod tape;
pub mod zip_forge;

/// Checks a seed meant to be a valid checkpoint is one: the reader finds its one tensor.
pub fn expect_one_tensor(bytes: &[u8]) {
    match lorabeam_worker::checkpoint::parse_torch_bytes("seed.pt", bytes) {
        Ok(dict) if dict.tensors.len() == 1 => {}
        Ok(dict) => panic!("a valid seed reads as {} tensors, not 1", dict.tensors.len()),
        Err(e) => panic!("a valid seed does not read: {e}"),
    }
}
