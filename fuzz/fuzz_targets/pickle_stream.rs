//! The pickle reader through `parse_torch_bytes`, on opcode programs (see pickle_prog) wrapped
//! as a torch.save zip archive or legacy stream: deep nesting and memo reuse are a `Repeat`
//! away. Never a crash, an allocation past the caps or a stack overflow (see guard).
#![no_main]

use libfuzzer_sys::fuzz_target;
use lorabeam_fuzz::guard::{init, on_worker_stack};
use lorabeam_fuzz::pickle_prog::{seeds, PickleIn};

fuzz_target!(init: init(seeds), |input: PickleIn| {
    let bytes = input.container();
    on_worker_stack(|| {
        let _ = lorabeam_worker::checkpoint::parse_torch_bytes("fuzz.pt", &bytes);
    });
});
