//! The WebNLG and DART metrics as WebNLG/GenerationEval's `eval.py` computes them (microsoft/
//! LoRA's copy, GenerationEval at 8067849, with its pinned nltk 3.5 and pyter3 0.3): the files
//! read as eval.py reads them ([`files`]), TER as pyter computes it ([`ter`]) and chrF++
//! ([`chrf`]).

pub mod chrf;
pub mod files;
pub mod ter;

pub use chrf::corpus_chrf;
pub use files::EvalFiles;
pub use ter::{corpus_ter, pyter_ter};

#[cfg(test)]
mod tests;
