//! The integration tests, as one test crate (one binary to build and link against libtorch,
//! one copy of `tests/support`); each module is what was once its own `tests/<name>.rs`, so a
//! test is still named by its file: `fleet::cancel_removes_the_remaining_shards`.
//!
//! `scripts/test.sh` runs them with cargo-nextest, one process per test, scheduled by
//! `.config/nextest.toml` (which tests may overlap, and which may not).

#[path = "../support/mod.rs"]
mod support;

mod adapters;
mod bad_inputs;
mod bounds;
mod checkpoint_layouts;
mod conformance;
mod dropin;
mod faults;
mod fleet;
mod fleet_adapters;
mod fleet_health;
mod fleet_tasks;
mod hostile_adapters;
mod hostile_rpcs;
mod job_life;
mod loader_errors;
mod newcomer;
mod object_storage;
mod object_storage_fleet;
mod operability;
mod python_client;
mod score;
mod score_tasks;
mod security;
mod telemetry;
mod trust;
mod two_coordinators;
