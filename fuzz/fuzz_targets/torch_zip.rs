//! The zip container of a torch.save archive through `parse_torch_bytes`, written byte by byte
//! from structured fields that may lie (see zip_forge): sizes, CRCs, offsets, zip64 extras and
//! end records. It may refuse them; never crash or allocate what the headers claim.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lorabeam_fuzz::guard::{init, on_worker_stack};
use lorabeam_fuzz::zip_forge::{seeds, ZipIn};

fuzz_target!(init: init(seeds), |input: ZipIn| {
    let bytes = input.bytes();
    on_worker_stack(|| {
        let _ = lorabeam_worker::checkpoint::parse_torch_bytes("fuzz.pt", &bytes);
    });
});
