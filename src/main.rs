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
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let result = match Cli::parse().command {
        Command::Run(args) => cli::run::run(*args),
        Command::Fixture(args) => cli::fixture::fixture(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
