//! How every lorabeam binary reads its command line, as argparse users expect: each flag
//! answers to both `--snake_case` and `--kebab-case`, and a flag given twice takes its last
//! value (appending flags, such as `--eos_token_id`, keep appending).
//!
//! Applied to the whole `clap::Command` tree at start, so a flag added later cannot forget it.

use clap::{Command, Parser};

/// The other spelling of a long flag: `eval_len` for `eval-len` and back; `None` when the name
/// has no separator, or mixes both (no single other spelling).
pub fn other_spelling(long: &str) -> Option<String> {
    match (long.contains('_'), long.contains('-')) {
        (true, false) => Some(long.replace('_', "-")),
        (false, true) => Some(long.replace('-', "_")),
        _ => None,
    }
}

/// `command` and every subcommand, each long flag given a hidden alias in its other spelling,
/// and every flag overriding itself.
pub fn argparse_style(command: Command) -> Command {
    command
        .args_override_self(true)
        .mut_args(|arg| {
            let Some(other) = arg.get_long().and_then(other_spelling) else { return arg };
            let known = arg.get_all_aliases().is_some_and(|aliases| aliases.iter().any(|a| *a == other));
            if known {
                return arg;
            }
            // clap keeps names as `&'static str` (without its `string` feature): the few
            // aliases made once at start live as long as the process anyway.
            let other: &'static str = Box::leak(other.into_boxed_str());
            arg.alias(other)
        })
        .after_help("Every flag also answers to its other spelling: --eval_len or --eval-len.")
        .mut_subcommands(argparse_style)
}

/// Parses the process's arguments into `T` the argparse way (see [`argparse_style`]); exits with
/// clap's message on an error, as `T::parse()` does.
pub fn parse<T: Parser>() -> T {
    let mut command = argparse_style(T::command());
    let parsed = command.try_get_matches_from_mut(std::env::args_os()).and_then(|m| T::from_arg_matches(&m));
    parsed.unwrap_or_else(|e| e.format(&mut command).exit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Args, CommandFactory, FromArgMatches, Subcommand};

    #[derive(Debug, Parser)]
    struct Top {
        #[arg(long = "model-id")]
        model_id: Option<String>,
        #[command(subcommand)]
        command: Option<Sub>,
    }

    #[derive(Debug, Subcommand)]
    enum Sub {
        Run(RunFlags),
    }

    #[derive(Debug, Args)]
    struct RunFlags {
        #[arg(long = "eval_len", default_value_t = 1)]
        eval_len: usize,
        #[arg(long = "eos_token_id")]
        eos: Vec<u32>,
        #[arg(long)]
        beam: Option<usize>,
    }

    fn parse_from(args: &[&str]) -> Result<Top, clap::Error> {
        let matches = argparse_style(Top::command()).try_get_matches_from(args)?;
        Top::from_arg_matches(&matches)
    }

    #[test]
    fn both_spellings_reach_the_same_flag() {
        let top = parse_from(&["t", "--model_id", "m", "run", "--eval-len", "7"]).expect("parses");
        assert_eq!(top.model_id.as_deref(), Some("m"));
        let Some(Sub::Run(run)) = top.command else { panic!("run") };
        assert_eq!(run.eval_len, 7);
    }

    #[test]
    fn a_repeated_flag_takes_its_last_value_and_appending_flags_append() {
        let args = ["t", "run", "--eval_len", "3", "--eval-len", "9", "--eos_token_id", "1", "--eos-token-id", "2"];
        let top = parse_from(&args).expect("parses");
        let Some(Sub::Run(run)) = top.command else { panic!("run") };
        assert_eq!((run.eval_len, run.eos), (9, vec![1, 2]));
    }

    #[test]
    fn every_long_flag_of_the_tree_has_both_spellings() {
        let command = argparse_style(Top::command());
        let mut seen = 0;
        let mut check = |cmd: &Command| {
            for arg in cmd.get_arguments() {
                if let Some(other) = arg.get_long().and_then(other_spelling) {
                    let aliases = arg.get_all_aliases().unwrap_or_default();
                    assert!(aliases.contains(&other.as_str()), "{:?} lacks --{other}", arg.get_long());
                    seen += 1;
                }
            }
        };
        check(&command);
        command.get_subcommands().for_each(&mut check);
        assert_eq!(seen, 3, "model-id, eval_len and eos_token_id");
    }

    #[test]
    fn names_without_one_other_spelling_are_left_alone() {
        assert_eq!(other_spelling("beam"), None);
        assert_eq!(other_spelling("a_b-c"), None);
        assert_eq!(other_spelling("max_kv_mib").as_deref(), Some("max-kv-mib"));
    }
}
