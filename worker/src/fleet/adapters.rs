//! A worker's adapters on disk: found by name under `--adapter-dir` (a PEFT directory `NAME/`
//! with `adapter_config.json`, or a loralib `NAME.pt`) and read by the [`AdapterLoader`]'s
//! thread. The scheduler decides when one is read and keeps the prepared ones in its cache,
//! bounded by `--max-adapter-mib`. A job whose adapter cannot be found or read fails with the
//! reason: it never decodes with the bare base.

use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use crate::model::{Adapter, AdapterWeights, Gpt2Config, PrepareTarget};

/// How a worker serves adapters (its flags, validated).
#[derive(Debug, Clone)]
pub struct AdapterConfig {
    /// Where adapters are found by name; `None`: this worker serves only its bare base.
    pub dir: Option<PathBuf>,
    /// Bytes the prepared adapters may hold together.
    pub max_bytes: usize,
    /// loralib checkpoints do not store alpha: the worker's `--lora_alpha`.
    pub loralib_alpha: f64,
    /// Take queued shards whose adapter is held before ones that would load another.
    pub prefer_held: bool,
}

/// Reads adapters, and prepares those in the low-rank form, on a thread of its own, so the
/// engine thread never stops its batch for a disk or for the factors' arithmetic: it asks by
/// name, and each answer comes back through `reply` (to the engine thread's inbox). Merged
/// copies need the model's weights: those the engine thread prepares from the read adapter.
pub struct AdapterLoader {
    requests: Sender<String>,
}

/// What the loader made of an adapter.
pub enum Loaded {
    /// Ready to decode with.
    Prepared(AdapterWeights),
    /// Read; the engine thread prepares it (merged copies).
    Read(Adapter),
}

/// A loaded adapter, or why it cannot be had (the reason names the adapter and its path).
pub type AdapterRead = Result<Loaded, String>;

impl AdapterLoader {
    pub fn spawn(
        config: AdapterConfig,
        model: Gpt2Config,
        target: PrepareTarget,
        reply: impl Fn(String, AdapterRead, Duration) + Send + 'static,
    ) -> std::io::Result<Self> {
        let (requests, inbox) = std::sync::mpsc::channel::<String>();
        std::thread::Builder::new().name("lorabeam-adapters".into()).spawn(move || {
            for name in inbox {
                let started = Instant::now();
                let loaded = read(&config, &model, &name).and_then(|adapter| {
                    match AdapterWeights::prepare_apart(&target, &adapter, &name) {
                        Some(Ok(weights)) => Ok(Loaded::Prepared(weights)),
                        Some(Err(e)) => Err(format!("adapter `{name}` cannot be prepared for this model: {e}")),
                        None => Ok(Loaded::Read(adapter)),
                    }
                });
                reply(name, loaded, started.elapsed());
            }
        })?;
        Ok(Self { requests })
    }

    /// Asks for `name`; `false` when the loader thread is gone (the adapter cannot be had).
    pub fn request(&self, name: &str) -> bool {
        self.requests.send(name.to_string()).is_ok()
    }
}

/// Finds `name` under `--adapter-dir` and reads it.
fn read(config: &AdapterConfig, model: &Gpt2Config, name: &str) -> Result<Adapter, String> {
    let Some(dir) = &config.dir else {
        return Err(format!("adapter `{name}`: this worker has no --adapter-dir, so it serves only its bare base"));
    };
    lorabeam_core::check_adapter_name(name).map_err(|e| e.to_string())?;
    let path = find_in(dir, name)?;
    Adapter::load(&path, model, config.loralib_alpha)
        .map_err(|e| format!("adapter `{name}` ({}) cannot be loaded: {e}", path.display()))
}

/// Where adapter `name` is under `dir`, or why it is not there.
pub fn find_in(dir: &Path, name: &str) -> Result<PathBuf, String> {
    let peft = dir.join(name);
    if peft.join("adapter_config.json").is_file() {
        return Ok(peft);
    }
    let loralib = dir.join(format!("{name}.pt"));
    if loralib.is_file() {
        return Ok(loralib);
    }
    Err(format!(
        "adapter `{name}` not found under --adapter-dir {}: neither {}/adapter_config.json nor {} exists",
        dir.display(),
        peft.display(),
        loralib.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapters_are_found_in_either_layout_and_a_missing_one_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("peft-a")).expect("mkdir");
        std::fs::write(dir.path().join("peft-a/adapter_config.json"), "{}").expect("write");
        std::fs::write(dir.path().join("step-2000.pt"), b"").expect("write");
        std::fs::create_dir(dir.path().join("empty")).expect("mkdir");
        assert_eq!(find_in(dir.path(), "peft-a"), Ok(dir.path().join("peft-a")));
        assert_eq!(find_in(dir.path(), "step-2000"), Ok(dir.path().join("step-2000.pt")));
        let err = find_in(dir.path(), "empty").expect_err("no adapter_config.json");
        assert!(err.starts_with("adapter `empty` not found under --adapter-dir"), "{err}");
        assert!(err.contains("empty/adapter_config.json") && err.contains("empty.pt"), "{err}");
    }
}
