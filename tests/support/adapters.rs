//! Adapter files for the fleet's adapter tests and bench: loralib adapters of the tiny fixture
//! in one --adapter-dir.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{conformance_dir, fixture};

/// `DIR/adapters` holding `fixture.pt` (the fixture's LoRA-only checkpoint: with the base it is
/// exactly the checkpoint of the goldens) and, for each `NAME=SCALE` of `variants`, `NAME.pt`
/// (its lora_B scaled), made by `tests/conformance/make_loralib_variants.py` with torch.
pub fn adapter_dir(dir: &Path, variants: &[&str]) -> PathBuf {
    let adapters = dir.join("adapters");
    std::fs::create_dir_all(&adapters).expect("mkdir");
    std::fs::copy(fixture("lora_only.pt"), adapters.join("fixture.pt")).expect("copy lora_only.pt");
    let python = std::env::var_os("PYTHON_SYS_EXECUTABLE").unwrap_or_else(|| "python3".into());
    let script = conformance_dir().join("make_loralib_variants.py");
    let out = Command::new(python).arg(script).arg(&adapters).args(variants).output().expect("python runs");
    assert!(out.status.success(), "make_loralib_variants.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
    adapters
}
