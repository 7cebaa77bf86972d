//! METEOR 1.5 through the official jar, driven as pycocoevalcap's `Meteor` wrapper drives it:
//! `java -jar -Xmx2G meteor-1.5.jar - - -stdio -l en -norm` in the jar's folder, one
//! `SCORE ||| ref ||| ... ||| hyp` line per instance (each answered by a statistics line),
//! then one `EVAL ||| stats ||| ...` line answered by one score per instance and the corpus
//! score, which is the number reported. Without java or the jar there is no number: the
//! result says why.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use super::error::MeteorUnavailable;

/// The environment variable naming meteor-1.5.jar.
pub const METEOR_JAR_ENV: &str = "LORABEAM_METEOR_JAR";

/// `~/.cache/lorabeam/torch-*/lib/python3*/site-packages/pycocoevalcap/meteor/meteor-1.5.jar`
/// (`$LORABEAM_CACHE` or `$XDG_CACHE_HOME/lorabeam` first), as scripts/setup.sh lays it out.
fn default_jar() -> Option<PathBuf> {
    let cache = std::env::var_os("LORABEAM_CACHE").map(PathBuf::from).or_else(|| {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
        Some(base.join("lorabeam"))
    })?;
    let children = |dir: &Path, prefix: &str| -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
        let mut found: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
            .map(|e| e.path())
            .collect();
        found.sort();
        found
    };
    for venv in children(&cache, "torch-") {
        for python in children(&venv.join("lib"), "python3") {
            let jar = python.join("site-packages/pycocoevalcap/meteor/meteor-1.5.jar");
            if jar.is_file() {
                return Some(jar);
            }
        }
    }
    None
}

/// Runs the METEOR jar; one child process per [`MeteorRunner::score`] call.
#[derive(Debug, Clone)]
pub struct MeteorRunner {
    jar: PathBuf,
    java: PathBuf,
}

impl MeteorRunner {
    /// A runner for `jar` with `java` from `PATH`. The paraphrase table must sit where the
    /// jar expects it (`data/paraphrase-en.gz` next to it, as pycocoevalcap ships it).
    pub fn new(jar: impl Into<PathBuf>) -> Self {
        Self { jar: jar.into(), java: PathBuf::from("java") }
    }

    /// The same with a given java binary.
    pub fn with_java(mut self, java: impl Into<PathBuf>) -> Self {
        self.java = java.into();
        self
    }

    /// A runner for the jar named by `LORABEAM_METEOR_JAR`, if set.
    pub fn from_env() -> Option<Self> {
        std::env::var_os(METEOR_JAR_ENV).map(Self::new)
    }

    /// The jar to use: `explicit` (a flag), else `LORABEAM_METEOR_JAR`, else where
    /// `scripts/setup.sh` installs it (pycocoevalcap in the per-user lorabeam venv). Where none
    /// is found, the reason, which a report shows in METEOR's place.
    pub fn locate(explicit: Option<&Path>) -> Result<Self, MeteorUnavailable> {
        let chosen = explicit.map(Path::to_path_buf).or_else(|| std::env::var_os(METEOR_JAR_ENV).map(PathBuf::from));
        if let Some(jar) = chosen {
            return match jar.is_file() {
                true => Ok(Self::new(jar)),
                false => Err(MeteorUnavailable::new(format!("no METEOR jar at {}", jar.display()))),
            };
        }
        default_jar().map(Self::new).ok_or_else(|| {
            MeteorUnavailable::new(format!(
                "no meteor-1.5.jar found: give --meteor-jar or set {METEOR_JAR_ENV} (scripts/setup.sh installs it with pycocoevalcap)"
            ))
        })
    }

    pub fn jar(&self) -> &Path {
        &self.jar
    }

    /// Corpus METEOR of PTB-tokenised hypotheses against their reference groups.
    pub fn score(&self, references: &[Vec<String>], hypotheses: &[String]) -> Result<f64, MeteorUnavailable> {
        if !self.jar.is_file() {
            return Err(MeteorUnavailable::new(format!("no METEOR jar at {}", self.jar.display())));
        }
        let dir = self.jar.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let jar_name = self.jar.file_name().unwrap_or(self.jar.as_os_str());
        let mut child = Command::new(&self.java)
            .args(["-jar".as_ref(), "-Xmx2G".as_ref(), jar_name])
            .args(["-", "-", "-stdio", "-l", "en", "-norm"])
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| MeteorUnavailable::new(format!("cannot start {}: {e}", self.java.display())))?;
        let result = converse(&mut child, hypotheses, references);
        let _ = child.kill();
        let status = child.wait();
        result.map_err(|why| {
            let stderr = child_stderr(&mut child);
            let status = status.map(|s| s.to_string()).unwrap_or_default();
            MeteorUnavailable::new(format!("METEOR jar failed ({why}; {status}): {stderr}"))
        })
    }
}

fn converse(child: &mut Child, hypotheses: &[String], references: &[Vec<String>]) -> Result<f64, String> {
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
    let mut eval_line = String::from("EVAL");
    for (hyp, refs) in hypotheses.iter().zip(references) {
        // pycocoevalcap strips `|||` from the hypothesis and halves double spaces once.
        let hyp = hyp.replace("|||", "").replace("  ", " ");
        let line = format!("SCORE ||| {} ||| {}", refs.join(" ||| "), hyp);
        let stats = exchange(&mut stdin, &mut stdout, &line)?;
        eval_line.push_str(" ||| ");
        eval_line.push_str(stats.trim());
    }
    send(&mut stdin, &eval_line)?;
    for _ in hypotheses {
        read_line(&mut stdout)?;
    }
    let total = read_line(&mut stdout)?;
    drop(stdin);
    total.trim().parse::<f64>().map_err(|e| format!("score line {:?}: {e}", total.trim()))
}

fn exchange(stdin: &mut ChildStdin, stdout: &mut BufReader<ChildStdout>, line: &str) -> Result<String, String> {
    send(stdin, line)?;
    read_line(stdout)
}

fn send(stdin: &mut ChildStdin, line: &str) -> Result<(), String> {
    stdin
        .write_all(line.as_bytes())
        .and_then(|()| stdin.write_all(b"\n"))
        .and_then(|()| stdin.flush())
        .map_err(|e| format!("writing to METEOR: {e}"))
}

fn read_line(stdout: &mut BufReader<ChildStdout>) -> Result<String, String> {
    let mut line = String::new();
    match stdout.read_line(&mut line) {
        Ok(0) => Err("METEOR closed its output".to_string()),
        Ok(_) => Ok(line),
        Err(e) => Err(format!("reading from METEOR: {e}")),
    }
}

fn child_stderr(child: &mut Child) -> String {
    let mut text = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut err, &mut text);
    }
    let tail: String = text.chars().rev().take(400).collect::<Vec<_>>().into_iter().rev().collect();
    tail.trim().to_string()
}
