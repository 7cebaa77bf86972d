//! `lorabeam`: beam-search decoding for LoRA-fine-tuned GPT-2.

mod cli;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "lorabeam", version, about = "Beam-search decoding for LoRA-fine-tuned GPT-2")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decode a test JSONL in this process (drop-in for gpt2_beam.py).
    Run(Box<cli::run::RunArgs>),
    /// Write a small seeded GPT-2 + LoRA checkpoint in gpt2_ft.py's format, plus sample data.
    Fixture(cli::fixture::FixtureArgs),
    /// Submit a test JSONL to a coordinator as a job (with --wait, follow it to the end).
    Submit(Box<cli::submit::SubmitArgs>),
    /// Submit one job per adapter over the same data, follow them all, write DIR/NAME.jsonl
    /// for each and print a table comparing them.
    Sweep(Box<cli::sweep::SweepArgs>),
    /// List the coordinator's jobs.
    Jobs(cli::jobs::JobsArgs),
    /// List the live workers per model: id, model, batch rows in use of the most, items/s, last seen.
    Workers(cli::workers::WorkersArgs),
    /// Follow one job until it ends.
    Watch(cli::jobs::WatchArgs),
    /// Cancel a running job: its queued shards are removed.
    Cancel(cli::jobs::JobArgs),
    /// Fetch a job's predictions in id order (while it runs, they arrive as they are ready).
    Results(cli::jobs::ResultsArgs),
    /// Compare a predictions file with a golden one, token for token.
    Compare(cli::compare::CompareArgs),
    /// Scores of predictions as their users' scripts compute them: E2E (BLEU, NIST, METEOR,
    /// ROUGE-L, CIDEr; gpt2_decode.py then measure_scores.py -p), or with --task webnlg|dart
    /// (BLEU, BLEU NLTK, METEOR, TER, chrF++; gpt2_decode.py then GenerationEval's eval.py).
    Score(Box<cli::score::ScoreArgs>),
}

fn main() -> std::process::ExitCode {
    use std::io::IsTerminal;
    // Before anything touches libtorch: `run` (the one command that decodes) may re-execute
    // this binary with glibc's and libgomp's settings in its environment; the client commands
    // are not worth a second start.
    let decodes = std::env::args_os().nth(1).is_some_and(|command| command == "run");
    let tuning = if decodes { lorabeam_worker::process::tune_process() } else { Default::default() };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let result = match lorabeam_proto::cli_flags::parse::<Cli>().command {
        Command::Run(args) => cli::run::run(*args, &tuning),
        Command::Fixture(args) => cli::fixture::fixture(args),
        Command::Submit(args) => cli::submit::submit(*args),
        Command::Sweep(args) => cli::sweep::sweep(*args),
        Command::Jobs(args) => cli::jobs::jobs(args),
        Command::Watch(args) => cli::jobs::watch(args),
        Command::Workers(args) => cli::workers::workers(args),
        Command::Cancel(args) => cli::jobs::cancel(args),
        Command::Results(args) => cli::jobs::results(args),
        Command::Compare(args) => cli::compare::compare(args),
        Command::Score(args) => cli::score::score(*args),
    };
    lorabeam_proto::error_text::exit_code(
        result.err().map(|err| err.chain().map(|e| e.to_string()).collect::<Vec<_>>()),
    )
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every subcommand's flags, with both spellings added, pass clap's own consistency checks
    /// (no alias clashes with another flag).
    #[test]
    fn the_command_line_is_consistent_with_both_spellings() {
        lorabeam_proto::cli_flags::argparse_style(super::Cli::command()).debug_assert();
    }
}
