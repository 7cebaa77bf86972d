//! `lorabeam compare`: a predictions file against a golden one, token for token (padding
//! zeros ignored), as the conformance tests judge lorabeam against gpt2_beam.py.

use std::path::PathBuf;

use clap::Args;
use lorabeam_core::predictions::compare_files;

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The golden predictions JSONL (ids 0..N, each once).
    pub golden: PathBuf,
    /// The predictions to judge: the golden's ids, strictly ascending.
    pub predictions: PathBuf,
    /// Exit 1 when fewer than this share of lines are identical.
    #[arg(long = "min-rate", alias = "min_rate", env = "LORABEAM_MIN_RATE", default_value_t = 1.0)]
    pub min_rate: f64,
    /// Differing ids to print.
    #[arg(long, env = "LORABEAM_COMPARE_SHOW", default_value_t = 5)]
    pub show: usize,
}

pub fn compare(args: CompareArgs) -> anyhow::Result<()> {
    anyhow::ensure!((0.0..=1.0).contains(&args.min_rate), "--min-rate must be between 0 and 1, not {}", args.min_rate);
    let agreement = compare_files(&args.golden, &args.predictions)?;
    for id in agreement.differing_ids.iter().take(args.show) {
        crate::outln!("id {id} differs");
    }
    crate::outln!("{agreement}");
    anyhow::ensure!(
        agreement.rate() >= args.min_rate,
        "{} of {} lines identical, below --min-rate {}",
        agreement.identical,
        agreement.total,
        args.min_rate
    );
    Ok(())
}
