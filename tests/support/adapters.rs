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

/// `adapters/loralib_equiv/`: the PEFT adapter equal to the fixture's `lora_only.pt` (r 4,
/// alpha 32), made with peft by `tests/conformance/make_peft_adapters.py` into
/// `target/peft-adapters/` (once per run: at once when up to date, as `adapters` uses it) and
/// copied here.
pub fn peft_equivalent(adapters: &Path) {
    let made = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/peft-adapters");
    let python = std::env::var_os("PYTHON_SYS_EXECUTABLE").unwrap_or_else(|| "python3".into());
    let out = std::process::Command::new(python)
        .arg(conformance_dir().join("make_peft_adapters.py"))
        .arg("from-loralib")
        .arg(&made)
        .arg(fixture("config.json"))
        .arg(fixture("lora_only.pt"))
        .args(["4", "32"])
        .output()
        .expect("python runs make_peft_adapters.py");
    assert!(out.status.success(), "make_peft_adapters.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let target = adapters.join("loralib_equiv");
    std::fs::create_dir_all(&target).expect("mkdir");
    for entry in std::fs::read_dir(made.join("loralib_equiv")).expect("the PEFT adapter") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), target.join(entry.file_name())).expect("copy");
    }
}

/// Issue 24's hostile adapters, by `tests/conformance/make_hostile_adapters.py`, into
/// `adapters`: `deep.pt`, `zip64.pt`, `memo.pt`, `stride.pt`, `bigconfig/` (see the script); with
/// `slow`, only `NAME.pt`, an adapter whose 512 MiB (sparse) storage takes a while to read.
pub fn hostile_adapters(adapters: &Path, slow: Option<&str>) {
    let python = std::env::var_os("PYTHON_SYS_EXECUTABLE").unwrap_or_else(|| "python3".into());
    let mut command = Command::new(python);
    command.arg(conformance_dir().join("make_hostile_adapters.py")).arg(adapters);
    if let Some(name) = slow {
        command.args(["--slow-only", name]);
    }
    let out = command.output().expect("python runs make_hostile_adapters.py");
    assert!(out.status.success(), "make_hostile_adapters.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
}
