//! Beam search with gpt2_beam.py's exact semantics, run as a continuously batched engine.

mod beam_group;
mod budget;
mod device_memory;
mod engine;
mod length_normalisation;
mod logits;
mod ngram;

pub use beam_group::{BeamGroup, Choice};
pub use budget::{batch_budget, BatchBudget, BudgetReport, CPU_DEFAULT_ROWS};
pub use engine::{Engine, EngineStats, ItemSource, WorkItem};
pub use length_normalisation::ScoreWidth;
pub use ngram::NgramTable;
