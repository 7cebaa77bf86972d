//! Beam search with gpt2_beam.py's exact semantics, run as a continuously batched engine.

mod beam_group;
mod engine;
mod logits;
mod ngram;
mod score;

pub use beam_group::{BeamGroup, Choice};
pub use engine::{Engine, EngineStats, ItemSource, WorkItem};
pub use ngram::NgramTable;
pub use score::ScoreWidth;
