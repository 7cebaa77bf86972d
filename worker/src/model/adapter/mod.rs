//! LoRA adapters on a shared base: loading them (loralib's `.pt`, HF PEFT directories) into one
//! description, and preparing them for a model in the form `--adapter-math` asks for.
//!
//! The files use one another without a cycle, and none uses this one, which only declares and
//! re-exports (`scripts/check-modules.py worker/src/model/adapter` checks both): `matrix` (the
//! leaf types), `sanity` (the bounds an adapter keeps) and `targets` (PEFT's module names) <-
//! `peft_config` (a config checked on its bytes) <- `peft` <- `layout` (what a path that is no
//! adapter holds) <- `loralib` <- `load` (`Adapter`) <- `prepared` (`AdapterWeights`, with
//! `math`'s `AdapterMath`) <- `tests`.

mod layout;
#[cfg(test)]
mod layout_tests;
mod load;
mod loralib;
mod math;
mod matrix;
mod peft;
mod peft_config;
mod prepared;
mod sanity;
mod targets;
#[cfg(test)]
mod tests;

pub use load::Adapter;
pub use math::AdapterMath;
pub use matrix::{AdaptedMatrix, AdaptedModule, LowRank};
pub use peft::{CONFIG_FILE as PEFT_CONFIG_FILE, FILES as PEFT_FILES, WEIGHTS_FILES as PEFT_WEIGHTS_FILES};
pub use peft_config::{check_peft_config, UNSUPPORTED_OPTIONS};
pub(crate) use prepared::{AdaptedWeight, BlockOverride};
pub use prepared::{AdapterWeights, PrepareTarget};
pub(crate) use sanity::check_lora_merge;
pub use sanity::{
    MAX_CONFIG_BYTES, MAX_CONFIG_ENTRIES, MAX_LORA_ALPHA, MAX_REGEX_BYTES, MAX_SCALING, MAX_UPDATE_ENTRY,
};
