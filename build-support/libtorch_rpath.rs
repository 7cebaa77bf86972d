// Shared by the build scripts of every package whose binaries or tests link libtorch.
//
// Embeds the libtorch library directory as an RPATH so that binaries find libtorch at run
// time without LD_LIBRARY_PATH, and keeps `libtorch_cuda` linked even though no symbol of it
// is referenced directly (otherwise `--as-needed` drops it and CUDA stays invisible).

use std::path::PathBuf;
use std::process::Command;

/// The directory holding libtorch's shared libraries: `$LIBTORCH/lib`, or the `torch/lib`
/// folder of the Python that `LIBTORCH_USE_PYTORCH=1` points torch-sys at.
fn libtorch_lib_dir() -> Option<PathBuf> {
    if let Ok(root) = std::env::var("LIBTORCH") {
        return Some(PathBuf::from(root).join("lib"));
    }
    let python = std::env::var("PYTHON_SYS_EXECUTABLE").unwrap_or_else(|_| "python".to_string());
    let out = Command::new(python)
        .args(["-c", "import os, torch; print(os.path.dirname(torch.__file__))"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = String::from_utf8(out.stdout).ok()?;
    Some(PathBuf::from(dir.trim()).join("lib"))
}

fn emit_libtorch_link_args() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=PYTHON_SYS_EXECUTABLE");
    println!("cargo:rerun-if-env-changed=LIBTORCH_USE_PYTORCH");
    let Some(lib) = libtorch_lib_dir() else {
        println!("cargo:warning=libtorch not found: binaries will need LD_LIBRARY_PATH");
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-search=native={}", lib.display());
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}
