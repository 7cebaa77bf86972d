//! Errors as one line for people: the error and its causes, each said once. Many errors both
//! quote their cause in their message and return it as `source()` (thiserror's `{source}` with a
//! `source` field, tonic's transport errors): printing the chain naively repeats it
//! (`No such file or directory (os error 2): No such file or directory (os error 2)`).

use std::error::Error;
use std::io::Write;

/// `err` and each cause not already said, joined with `: `.
pub fn error_text(err: &(dyn Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(next) = cause {
        let said = next.to_string();
        if !said.is_empty() && !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = next.source();
    }
    text
}

/// [`error_text`] of an `anyhow`-style chain given as its messages, outermost first.
pub fn chain_text<'a>(messages: impl IntoIterator<Item = String> + 'a) -> String {
    let mut text = String::new();
    for said in messages {
        if said.is_empty() || text.contains(&said) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&said);
    }
    text
}

/// How a binary ends: success, or failure after `error: ` and the failure's chain (its
/// messages, outermost first) on standard error, each cause once. Errors may carry a peer's
/// words, so no control character reaches the terminal raw.
pub fn exit_code<I: IntoIterator<Item = String>>(failure: Option<I>) -> std::process::ExitCode {
    match failure {
        None => std::process::ExitCode::SUCCESS,
        Some(chain) => {
            // A closed standard error leaves no one to tell, and must not turn into a panic.
            let text = chain_text(chain);
            let _ = writeln!(std::io::stderr(), "error: {}", lorabeam_core::quote::escape_controls(&text, true));
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read {path}: {source}")]
    struct Read {
        path: String,
        source: std::io::Error,
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let said = io.to_string();
        let err = Read { path: "a.jsonl".into(), source: io };
        assert_eq!(error_text(&err), format!("cannot read a.jsonl: {said}"));
    }

    #[test]
    fn new_causes_are_added_once_each() {
        let messages = ["fetching job-1", "transport error", "transport error", "tcp connect error", "refused"];
        assert_eq!(
            chain_text(messages.map(String::from)),
            "fetching job-1: transport error: tcp connect error: refused"
        );
    }
}
