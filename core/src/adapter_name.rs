//! Adapter names: what a job may call its adapter. A worker looks the name up as a path under
//! its `--adapter-dir` (`DIR/NAME/` or `DIR/NAME.pt`), so a name must stay one plain path
//! component there: no separators, no `..`, no hidden files, bounded length. The coordinator
//! refuses other names at submission; workers check again before touching the disk.

use crate::quote::{prefix, quote};

/// Longest adapter name, in bytes.
pub const MAX_ADAPTER_NAME_BYTES: usize = 128;

/// Why a string is not a usable adapter name. Each message names the field (`adapter`) and
/// quotes the name with control characters escaped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdapterNameError {
    #[error("adapter `{name}` is {bytes} bytes, over the limit of {max}")]
    TooLong { name: String, bytes: usize, max: usize },
    #[error("adapter {name} starts with `.`: an adapter name may not be a hidden file or `..`")]
    LeadingDot { name: String },
    #[error("adapter {name} holds `..`: an adapter name is one path component under --adapter-dir")]
    DotDot { name: String },
    #[error("adapter {name} holds {found}: an adapter name is letters, digits, `.`, `_` or `-` (no path separators)")]
    BadCharacter { name: String, found: String },
}

/// Checks a non-empty adapter name (empty means the bare base: the caller's case).
pub fn check_adapter_name(name: &str) -> Result<(), AdapterNameError> {
    if name.len() > MAX_ADAPTER_NAME_BYTES {
        return Err(AdapterNameError::TooLong { name: prefix(name), bytes: name.len(), max: MAX_ADAPTER_NAME_BYTES });
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(AdapterNameError::BadCharacter { name: quote(name), found: quote(&c.to_string()) });
    }
    if name.starts_with('.') {
        return Err(AdapterNameError::LeadingDot { name: quote(name) });
    }
    if name.contains("..") {
        return Err(AdapterNameError::DotDot { name: quote(name) });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_pass() {
        for good in ["a", "step-2000", "model.26289", "e2e_r8-alpha16", &"x".repeat(MAX_ADAPTER_NAME_BYTES)] {
            assert_eq!(check_adapter_name(good), Ok(()), "{good}");
        }
    }

    #[test]
    fn names_that_leave_the_directory_are_refused_naming_the_field() {
        let cases = [
            ("a/b", "holds `/`"),
            ("..", "starts with `.`"),
            ("../etc", "holds `/`"),
            (".hidden", "starts with `.`"),
            ("a..b", "holds `..`"),
            ("a\\b", "holds `\\`"),
            ("a b", "holds ` `"),
            ("a\nb", "holds `\\n`"),
            ("é", "holds `é`"),
        ];
        for (bad, expected) in cases {
            let err = check_adapter_name(bad).expect_err(bad).to_string();
            assert!(err.starts_with("adapter `") && err.contains(expected), "{bad:?}: {err}");
        }
        let long = "x".repeat(MAX_ADAPTER_NAME_BYTES + 1);
        let err = check_adapter_name(&long).expect_err("too long").to_string();
        assert!(err.contains("is 129 bytes, over the limit of 128"), "{err}");
    }
}
