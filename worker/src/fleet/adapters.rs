//! A worker's adapters: found by name under `--adapter-dir` (a PEFT directory `NAME/` with
//! `adapter_config.json`, or a loralib `NAME.pt`), loaded and prepared for the one base on first
//! use, and kept in the [`AdapterCache`] bounded by `--max-adapter-mib`. A job whose adapter
//! cannot be found or loaded fails with the reason: it never decodes with the bare base.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::adapter_cache::{AdapterCache, CacheError};
use super::in_use::InUse;
use super::metrics::METRICS;
use crate::model::{Adapter, AdapterWeights, Gpt2};

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

/// What a shard's adapter lookup found.
pub enum Lookup {
    Ready(AdapterWeights),
    /// The adapters in use leave no room: the shard waits until some are done.
    Wait,
    /// The job's items fail with this reason.
    Failed(String),
}

pub struct Adapters {
    config: AdapterConfig,
    cache: AdapterCache<AdapterWeights>,
    /// Prepared size of every adapter loaded so far: whether one fits is known before loading
    /// it again.
    sizes: HashMap<String, usize>,
    in_use: Arc<InUse>,
}

impl Adapters {
    pub fn new(config: AdapterConfig, in_use: Arc<InUse>) -> Self {
        let cache = AdapterCache::new(config.max_bytes);
        Self { config, cache, sizes: HashMap::new(), in_use }
    }

    pub fn prefer_held(&self) -> bool {
        self.config.prefer_held
    }

    /// Whether a shard of `adapter` runs without loading anything ("" is the bare base).
    pub fn is_held(&self, adapter: &str) -> bool {
        adapter.is_empty() || self.cache.contains(adapter)
    }

    /// The prepared weights of `name`, from the cache or loaded now; `model` is `None` on an
    /// engine without a model (echo), which cannot serve adapters.
    pub fn lookup(&mut self, model: Option<&Gpt2>, name: &str) -> Lookup {
        if let Some(weights) = self.cache.get(name) {
            return Lookup::Ready(weights);
        }
        let Some(model) = model else {
            return Lookup::Failed(format!("adapter `{name}`: this worker runs without a model (--engine echo)"));
        };
        let path = match self.find(name) {
            Ok(path) => path,
            Err(reason) => return Lookup::Failed(reason),
        };
        // An adapter seen before says its size; a new one is taken to be as large as the
        // largest seen. With nothing in use, anything that fits the bound is tried.
        let estimate = self.sizes.get(name).copied().or_else(|| self.sizes.values().max().copied()).unwrap_or(0);
        let in_use = self.in_use.clone();
        if !in_use.is_empty() && !self.cache.has_room(estimate, |n| in_use.uses(n)) {
            return Lookup::Wait;
        }
        let started = std::time::Instant::now();
        let loaded = Adapter::load(&path, model.config(), self.config.loralib_alpha)
            .and_then(|adapter| AdapterWeights::prepare(model, &adapter, name));
        let weights = match loaded {
            Ok(weights) => weights,
            Err(e) => return Lookup::Failed(format!("adapter `{name}` ({}) cannot be loaded: {e}", path.display())),
        };
        METRICS.adapter_loads.inc();
        self.sizes.insert(name.to_string(), weights.bytes());
        match self.cache.insert(name, weights.clone(), weights.bytes(), |n| in_use.uses(n)) {
            Ok(evicted) => {
                METRICS.adapter_evictions.inc_by(evicted.len() as u64);
                METRICS.adapter_bytes.set(self.cache.held_bytes() as i64);
                tracing::info!(
                    adapter = name,
                    mib = weights.bytes() as f64 / (1 << 20) as f64,
                    seconds = started.elapsed().as_secs_f64(),
                    ?evicted,
                    "loaded adapter"
                );
                Lookup::Ready(weights)
            }
            Err(CacheError::Busy { .. }) => Lookup::Wait,
            Err(e @ CacheError::TooLarge { .. }) => Lookup::Failed(e.to_string()),
        }
    }

    /// `DIR/NAME/` (a PEFT adapter) or `DIR/NAME.pt` (loralib), after checking that the name
    /// stays inside `DIR`.
    fn find(&self, name: &str) -> Result<PathBuf, String> {
        let Some(dir) = &self.config.dir else {
            return Err(format!("adapter `{name}`: this worker has no --adapter-dir, so it serves only its bare base"));
        };
        lorabeam_core::check_adapter_name(name).map_err(|e| e.to_string())?;
        find_in(dir, name)
    }
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
