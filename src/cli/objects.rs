//! `lorabeam run`'s inputs named by URL (`s3://`, `gs://`, `az://`): the data read once into
//! memory, the model's files and the adapters fetched into the object cache
//! ([`lorabeam_worker::model_files`]), then read from there as local files are.

use std::path::Path;

use anyhow::Context;
use lorabeam_core::records::read_data_file;
use lorabeam_storage::Location;
use lorabeam_worker::model_files::location;
use lorabeam_worker::{ModelArgs, ModelSpec};

use super::client::block_on;
use super::run_adapters::AdapterSpec;

/// The largest data file read from a store.
pub const DATA_MAX: u64 = 1 << 30;

/// A data file's bytes, read once: a path (or a pipe) from disk, a URL from its store, whole,
/// up to [`DATA_MAX`] bytes.
pub fn read_data(path: &Path) -> anyhow::Result<Vec<u8>> {
    match location(path)? {
        Location::Local(local) => Ok(read_data_file(&local)?),
        Location::Remote(remote) => block_on(async move { Ok(remote.read(DATA_MAX).await?.0) }),
    }
}

/// The model's spec and the adapters, every file named by URL fetched into the object cache
/// (each fetch said on stderr) and named by its local copy.
pub fn fetch_model_files(model: &ModelArgs, adapters: &[AdapterSpec]) -> anyhow::Result<(ModelSpec, Vec<AdapterSpec>)> {
    let files = model.object_files(|line| crate::errln!("{line}"));
    block_on(async {
        let spec = model.resolved_spec(&files).await?;
        let mut local = Vec::with_capacity(adapters.len());
        for spec in adapters {
            let path = files.adapter(&spec.path).await.with_context(|| format!("adapter `{}`", spec.name))?;
            local.push(AdapterSpec { name: spec.name.clone(), path });
        }
        Ok((spec, local))
    })
}
