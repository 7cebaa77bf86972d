//! The PTB tokenisation by the real Stanford CoreNLP 3.4.1 jar, run as pycocoevalcap runs it
//! (`java -cp stanford-corenlp-3.4.1.jar edu.stanford.nlp.process.PTBTokenizer
//! -preserveLines -lowerCase FILE`). The Rust scanner in [`super::ptb`] is the default;
//! this is the reference it is checked against, and a fallback for text outside what that
//! check covered.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use super::error::{EvalError, Result};
use super::ptb::captions_from_jar_output;

/// The environment variable naming stanford-corenlp-3.4.1.jar.
pub const PTB_JAR_ENV: &str = "LORABEAM_PTB_JAR";

/// Runs the CoreNLP jar's PTBTokenizer.
#[derive(Debug, Clone)]
pub struct PtbJar {
    jar: PathBuf,
    java: PathBuf,
}

impl PtbJar {
    pub fn new(jar: impl Into<PathBuf>) -> Self {
        Self { jar: jar.into(), java: PathBuf::from("java") }
    }

    /// A runner for the jar named by `LORABEAM_PTB_JAR`, if set.
    pub fn from_env() -> Option<Self> {
        std::env::var_os(PTB_JAR_ENV).map(Self::new)
    }

    /// What the jar prints for `text` (the sentences joined by newlines).
    pub fn output(&self, text: &str) -> Result<String> {
        let mut file = tempfile::NamedTempFile::new().map_err(|e| EvalError::PtbJar(format!("temp file: {e}")))?;
        file.write_all(text.as_bytes()).map_err(|e| EvalError::PtbJar(format!("temp file: {e}")))?;
        let out = Command::new(&self.java)
            .arg("-cp")
            .arg(&self.jar)
            .args(["edu.stanford.nlp.process.PTBTokenizer", "-preserveLines", "-lowerCase"])
            .arg(file.path())
            .output()
            .map_err(|e| EvalError::PtbJar(format!("cannot start {}: {e}", self.java.display())))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(EvalError::PtbJar(format!("{}: {}", out.status, stderr.trim())));
        }
        String::from_utf8(out.stdout).map_err(|e| EvalError::PtbJar(format!("output is not UTF-8: {e}")))
    }

    /// Tokenises sentences as pycocoevalcap does, with the jar.
    pub fn tokenize(&self, sentences: &[&str]) -> Result<Vec<String>> {
        let joined = sentences.iter().map(|s| s.replace('\n', " ")).collect::<Vec<_>>().join("\n");
        Ok(captions_from_jar_output(&self.output(&joined)?, sentences.len()))
    }
}
