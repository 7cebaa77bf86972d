//! The checkpoint reader (zip container, legacy stream, pickle, tensor storages) on arbitrary
//! bytes: it may refuse them, never crash, hang or execute anything.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = lorabeam_worker::checkpoint::parse_torch_bytes("fuzz.pt", data);
});
