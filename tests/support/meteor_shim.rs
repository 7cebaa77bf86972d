//! A `java` for the coordinator's `PATH` that counts METEOR's JVM starts and, when asked,
//! holds each start until the test opens a gate, then runs the real java: tests see how often
//! scoring starts, and hold scoring open for as long as they need, waiting for states.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct JavaShim {
    /// `PATH` with the shim first, for the coordinator's environment.
    pub path: String,
    /// Created by [`JavaShim::open_gate`]; a gated shim waits for it.
    pub gate: PathBuf,
    /// One line per JVM start.
    pub runs: PathBuf,
}

impl JavaShim {
    /// The shim in `dir/shim-bin`; `gated`: each start waits for the gate.
    pub fn new(dir: &Path, gated: bool) -> Self {
        let bin = dir.join("shim-bin");
        std::fs::create_dir_all(&bin).expect("mkdir");
        let (gate, runs) = (dir.join("meteor-gate"), dir.join("meteor-runs"));
        let real = Command::new("sh").args(["-c", "command -v java"]).output().expect("sh").stdout;
        let real = String::from_utf8_lossy(&real).trim().to_string();
        let wait =
            if gated { format!("while [ ! -e '{}' ]; do sleep 0.05; done\n", gate.display()) } else { String::new() };
        let script = format!("#!/bin/sh\n{wait}echo run >> '{}'\nexec '{real}' \"$@\"\n", runs.display());
        let java = bin.join("java");
        std::fs::write(&java, script).expect("write shim");
        assert!(Command::new("chmod").arg("+x").arg(&java).status().expect("chmod").success());
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
        Self { path, gate, runs }
    }

    pub fn open_gate(&self) {
        std::fs::write(&self.gate, b"").expect("open the gate");
    }

    /// JVM starts so far.
    pub fn runs(&self) -> usize {
        std::fs::read_to_string(&self.runs).map(|t| t.lines().count()).unwrap_or(0)
    }
}
