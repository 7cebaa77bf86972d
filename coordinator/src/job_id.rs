//! Job ids: the one format the coordinator issues (`job-` and 16 lowercase hex digits), and the
//! one check every id from a client or a worker passes before it becomes part of a Redis key.

use std::fmt;

use crate::error::{CoordinatorError, Result};

const PREFIX: &str = "job-";
const HEX_DIGITS: usize = 16;

/// A well-formed job id. The only ways to get one are [`JobId::fresh`] and [`JobId::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobId(String);

impl JobId {
    /// A fresh id: short, unique, safe in keys and file names.
    pub fn fresh() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        Self(format!("{PREFIX}{}", &id[..HEX_DIGITS]))
    }

    /// Checks an id sent by a client or a worker; anything else is `InvalidJobId`.
    pub fn parse(id: &str) -> Result<Self> {
        let well_formed = id.strip_prefix(PREFIX).is_some_and(|hex| {
            hex.len() == HEX_DIGITS && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        if well_formed {
            Ok(Self(id.to_string()))
        } else {
            Err(CoordinatorError::InvalidJobId(lorabeam_core::quote::quote(id)))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_issued_format_parses() {
        let fresh = JobId::fresh();
        assert_eq!(JobId::parse(fresh.as_str()).expect("fresh ids parse"), fresh);
        assert!(JobId::parse("job-0123456789abcdef").is_ok());
        for bad in [
            "",
            "job-",
            "job-none",
            "job-0123456789abcdef:results",
            "job-0123456789abcdef:plan",
            "job-0123456789ABCDEF",
            "job-0123456789abcde",
            "job-0123456789abcdef0",
            "JOB-0123456789abcdef",
            "job-0123456789abcdeg",
        ] {
            assert!(matches!(JobId::parse(bad), Err(CoordinatorError::InvalidJobId(_))), "{bad}");
        }
    }
}
