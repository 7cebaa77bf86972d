//! A worker's adapters on disk: found by name under `--adapter-dir` (a PEFT directory `NAME/`
//! with `adapter_config.json`, or a loralib `NAME.pt`) and read by the [`AdapterLoader`]'s
//! thread. The scheduler decides when one is read and keeps the prepared ones in its cache,
//! bounded by `--max-adapter-mib`. A job whose adapter cannot be found or read fails with the
//! reason: it never decodes with the bare base. A name resolves inside the folder only (links
//! that leave it are refused unless `--adapter-dir-follow-links`), and an adapter that fails to
//! load is refused by its [`AdapterBook`] until its files change.

use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::adapter_book::AdapterBook;
use super::remote_adapters::RemoteAdapters;
use crate::model::adapter::PEFT_FILES;
use crate::model::{Adapter, AdapterWeights, Gpt2Config, PrepareTarget};

/// Where a worker finds adapters by name.
#[derive(Debug, Clone)]
pub enum AdapterSource {
    /// No `--adapter-dir`: this worker serves only its bare base.
    None,
    /// A folder (a volume).
    Dir(PathBuf),
    /// A prefix in object storage: adapters are fetched by the claimer into a local cache, and
    /// known to the loader as `NAME@VERSION`.
    Remote(Arc<RemoteAdapters>),
}

impl AdapterSource {
    /// Where, as `--adapter-dir` was given; `None` when no adapter is served.
    pub fn shown(&self) -> Option<String> {
        match self {
            AdapterSource::None => None,
            AdapterSource::Dir(dir) => Some(dir.display().to_string()),
            AdapterSource::Remote(remote) => Some(remote.url().to_string()),
        }
    }
}

/// How a worker serves adapters (its flags, validated).
#[derive(Debug, Clone)]
pub struct AdapterConfig {
    pub source: AdapterSource,
    /// Bytes the prepared adapters may hold together.
    pub max_bytes: usize,
    /// loralib checkpoints do not store alpha: the worker's `--lora_alpha`.
    pub loralib_alpha: f64,
    /// Take queued shards whose adapter is held before ones that would load another.
    pub prefer_held: bool,
    /// Follow links under a `Dir` source that lead out of it.
    pub follow_links: bool,
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
        mut book: Box<dyn AdapterBook>,
        reply: impl Fn(String, AdapterRead, Duration) + Send + 'static,
    ) -> std::io::Result<Self> {
        let (requests, inbox) = std::sync::mpsc::channel::<String>();
        std::thread::Builder::new().name("lorabeam-adapters".into()).spawn(move || {
            for name in inbox {
                let started = Instant::now();
                // A panic while reading must not leave the job waiting on an answer forever.
                let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    load(&config, &model, &target, book.as_mut(), &name)
                }))
                .unwrap_or_else(|panic| {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    Err(format!("adapter `{name}`: reading it failed inside the worker ({what})"))
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

/// Finds `name` under `--adapter-dir`, then reads and prepares it unless `book` refuses it; a
/// failure to read or prepare goes into the book.
fn load(
    config: &AdapterConfig,
    model: &Gpt2Config,
    target: &PrepareTarget,
    book: &mut dyn AdapterBook,
    name: &str,
) -> AdapterRead {
    let path = match &config.source {
        AdapterSource::Remote(remote) => {
            let Some((adapter, dir)) = remote.folder(name) else {
                return Err(format!("adapter `{name}`: not in this worker's cache of {} (evicted?)", remote.url()));
            };
            // The cache folder holds only what the worker fetched: no link to check.
            find_in(&dir, &adapter)?
        }
        AdapterSource::Dir(dir) => {
            lorabeam_core::check_adapter_name(name).map_err(|e| e.to_string())?;
            let path = find_in(dir, name)?;
            if !config.follow_links {
                check_inside(dir, name, &path)?;
            }
            path
        }
        AdapterSource::None => {
            return Err(format!("adapter `{name}`: this worker has no --adapter-dir, so it serves only its bare base"))
        }
    };
    let print = fingerprint(&path).map_err(|e| format!("adapter `{name}` ({}): {e}", path.display()))?;
    if let Some(reason) = book.refuse(name, &print) {
        return Err(reason);
    }
    book.loading(name, &print);
    let loaded = Adapter::load(&path, model, config.loralib_alpha)
        .map_err(|e| format!("adapter `{name}` ({}) cannot be loaded: {e}", path.display()))
        .and_then(|adapter| match AdapterWeights::prepare_apart(target, &adapter, name) {
            Some(Ok(weights)) => Ok(Loaded::Prepared(weights)),
            Some(Err(e)) => Err(format!("adapter `{name}` cannot be prepared for this model: {e}")),
            None => Ok(Loaded::Read(adapter)),
        });
    book.loaded(name, &print, loaded.as_ref().err().map(String::as_str));
    loaded
}

/// The adapter's files as they are now, by size and modification time: a changed file is a new
/// adapter to the [`AdapterBook`].
pub fn fingerprint(path: &Path) -> std::io::Result<String> {
    let stamp = |file: &Path| -> std::io::Result<String> {
        let meta = std::fs::metadata(file)?;
        let modified = meta.modified()?.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Ok(format!("{}:{}", meta.len(), modified.as_nanos()))
    };
    if !path.is_dir() {
        return stamp(path);
    }
    let mut parts = Vec::new();
    for file in PEFT_FILES {
        let file = path.join(file);
        if file.exists() {
            parts.push(format!(
                "{}={}",
                file.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
                stamp(&file)?
            ));
        }
    }
    Ok(parts.join(";"))
}

/// Refuses an adapter whose path, or a file of it, leads out of `dir` through a link: a name a
/// client sends must reach only what the operator put in the folder. (Links that stay inside,
/// such as a Kubernetes volume's `..data`, resolve inside and pass.)
fn check_inside(dir: &Path, name: &str, path: &Path) -> Result<(), String> {
    let real = |p: &Path| p.canonicalize().map_err(|e| format!("adapter `{name}`: {}: {e}", p.display()));
    let root = real(dir)?;
    let mut paths = vec![path.to_path_buf()];
    if path.is_dir() {
        paths.extend(PEFT_FILES.iter().map(|f| path.join(f)).filter(|p| p.exists()));
    }
    for p in paths {
        let resolved = real(&p)?;
        if !resolved.starts_with(&root) {
            return Err(format!(
                "adapter `{name}`: {} leads to {}, outside --adapter-dir {}; refused (--adapter-dir-follow-links \
                 allows links out of the folder)",
                p.display(),
                resolved.display(),
                dir.display()
            ));
        }
    }
    Ok(())
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

    #[test]
    fn links_out_of_the_folder_are_refused_and_links_inside_pass() {
        let root = tempfile::tempdir().expect("tempdir");
        let (dir, outside) = (root.path().join("adapters"), root.path().join("elsewhere"));
        for peft in [dir.join("real"), outside.join("secret")] {
            std::fs::create_dir_all(&peft).expect("mkdir");
            std::fs::write(peft.join("adapter_config.json"), "{}").expect("write");
        }
        std::fs::write(outside.join("other.pt"), b"x").expect("write");
        std::os::unix::fs::symlink(outside.join("secret"), dir.join("leak")).expect("link");
        std::os::unix::fs::symlink(outside.join("other.pt"), dir.join("leak2.pt")).expect("link");
        std::os::unix::fs::symlink(dir.join("real"), dir.join("alias")).expect("link");
        std::fs::create_dir(dir.join("mixed")).expect("mkdir");
        std::os::unix::fs::symlink(outside.join("secret/adapter_config.json"), dir.join("mixed/adapter_config.json"))
            .expect("link");
        for name in ["leak", "leak2", "mixed"] {
            let path = find_in(&dir, name).expect("found");
            let err = check_inside(&dir, name, &path).expect_err("a link out of the folder");
            assert!(err.contains("outside --adapter-dir") && err.contains("--adapter-dir-follow-links"), "{err}");
        }
        let alias = find_in(&dir, "alias").expect("found");
        assert_eq!(check_inside(&dir, "alias", &alias), Ok(()));
    }

    #[test]
    fn a_fingerprint_changes_with_any_file_of_the_adapter() {
        let dir = tempfile::tempdir().expect("tempdir");
        let peft = dir.path().join("a");
        std::fs::create_dir(&peft).expect("mkdir");
        std::fs::write(peft.join("adapter_config.json"), "{}").expect("write");
        std::fs::write(peft.join("adapter_model.safetensors"), b"1234").expect("write");
        let before = fingerprint(&peft).expect("stat");
        assert_eq!(fingerprint(&peft).expect("stat"), before, "stable while nothing changes");
        std::fs::write(peft.join("adapter_model.safetensors"), b"12345").expect("write");
        assert_ne!(fingerprint(&peft).expect("stat"), before);
    }
}
