//! METEOR 1.5 through the official jar, driven as pycocoevalcap's `Meteor` wrapper drives it:
//! `java -jar -Xmx2G meteor-1.5.jar - - -stdio -l en -norm` in the jar's folder, one
//! `SCORE ||| ref ||| ... ||| hyp` line per instance (each answered by a statistics line),
//! then one `EVAL ||| stats ||| ...` line answered by one score per instance and the corpus
//! score, which is the number reported. Without java or the jar there is no number: the
//! result says why. One JVM serves a runner's calls one after another (pycocoevalcap keeps its
//! process too): starting it and loading the paraphrase table costs seconds, and a coordinator
//! scores job after job.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};

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

/// A running METEOR JVM in `-stdio` mode, killed when dropped.
struct Jvm {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Drop for Jvm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the METEOR jar: one JVM, started on the first [`MeteorRunner::score`] call and kept
/// for the next ones (clones share it, and take turns); a JVM that fails is dropped, and the
/// next call starts another.
#[derive(Clone)]
pub struct MeteorRunner {
    jar: PathBuf,
    java: PathBuf,
    jvm: Arc<Mutex<Option<Jvm>>>,
}

impl std::fmt::Debug for MeteorRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeteorRunner").field("jar", &self.jar).field("java", &self.java).finish()
    }
}

impl MeteorRunner {
    /// A runner for `jar` with `java` from `PATH`. The paraphrase table must sit where the
    /// jar expects it (`data/paraphrase-en.gz` next to it, as pycocoevalcap ships it).
    pub fn new(jar: impl Into<PathBuf>) -> Self {
        Self { jar: jar.into(), java: PathBuf::from("java"), jvm: Arc::default() }
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

    /// Corpus METEOR of PTB-tokenised hypotheses against their reference groups, each
    /// hypothesis first cleaned as pycocoevalcap cleans it.
    pub fn score(&self, references: &[Vec<String>], hypotheses: &[String]) -> Result<f64, MeteorUnavailable> {
        self.run(references, hypotheses, Hypothesis::Pycocoevalcap)
    }

    /// Corpus METEOR as `java -jar meteor-1.5.jar HYP REF -l en -norm -r N` gives it for
    /// files holding these texts (WebNLG/GenerationEval's eval.py), each item with its `N`
    /// references: the texts go to the kept JVM as they are. A text holding `|||` cannot go
    /// through `-stdio`, so such a call runs that file command instead.
    pub fn score_references(
        &self,
        references: &[Vec<String>],
        hypotheses: &[String],
    ) -> Result<f64, MeteorUnavailable> {
        let piped = |t: &String| t.contains("|||");
        if hypotheses.iter().any(piped) || references.iter().flatten().any(piped) {
            return super::meteor_files::score_with_files(self, references, hypotheses);
        }
        self.run(references, hypotheses, Hypothesis::AsIs)
    }

    /// The java binary this runner starts.
    pub fn java(&self) -> &Path {
        &self.java
    }

    fn run(
        &self,
        references: &[Vec<String>],
        hypotheses: &[String],
        hypothesis: Hypothesis,
    ) -> Result<f64, MeteorUnavailable> {
        if !self.jar.is_file() {
            return Err(MeteorUnavailable::new(format!("no METEOR jar at {}", self.jar.display())));
        }
        // The JVM's conversation is one scoring at a time; a poisoned lock held only a JVM.
        let mut kept = self.jvm.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut jvm = match kept.take() {
            Some(jvm) => jvm,
            None => self.start()?,
        };
        match converse(&mut jvm, hypotheses, references, hypothesis) {
            Ok(score) => {
                *kept = Some(jvm);
                Ok(score)
            }
            Err(why) => {
                let _ = jvm.child.kill();
                let status = jvm.child.wait().map(|s| s.to_string()).unwrap_or_default();
                let stderr = child_stderr(&mut jvm.child);
                Err(MeteorUnavailable::new(format!("METEOR jar failed ({why}; {status}): {stderr}")))
            }
        }
    }

    fn start(&self) -> Result<Jvm, MeteorUnavailable> {
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
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(MeteorUnavailable::new("the METEOR process has no stdin or stdout".to_string()));
        };
        Ok(Jvm { child, stdin, stdout: BufReader::new(stdout) })
    }
}

/// How a hypothesis goes into a `SCORE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hypothesis {
    /// pycocoevalcap's cleaning: `|||` removed, double spaces halved once.
    Pycocoevalcap,
    /// As it is.
    AsIs,
}

fn converse(
    jvm: &mut Jvm,
    hypotheses: &[String],
    references: &[Vec<String>],
    hypothesis: Hypothesis,
) -> Result<f64, String> {
    // One line per request: a line break inside a text would put the kept JVM's answers out of
    // step with later calls. The score files never hold one; refuse rather than desynchronise.
    let broken = |t: &String| t.contains(['\n', '\r']);
    if hypotheses.iter().any(broken) || references.iter().flatten().any(broken) {
        return Err("a text holds a line break".to_string());
    }
    let (stdin, stdout) = (&mut jvm.stdin, &mut jvm.stdout);
    let mut eval_line = String::from("EVAL");
    for (hyp, refs) in hypotheses.iter().zip(references) {
        // pycocoevalcap strips `|||` from the hypothesis and halves double spaces once.
        let hyp = match hypothesis {
            Hypothesis::Pycocoevalcap => hyp.replace("|||", "").replace("  ", " "),
            Hypothesis::AsIs => hyp.clone(),
        };
        let line = format!("SCORE ||| {} ||| {}", refs.join(" ||| "), hyp);
        let stats = exchange(stdin, stdout, &line)?;
        eval_line.push_str(" ||| ");
        eval_line.push_str(stats.trim());
    }
    send(stdin, &eval_line)?;
    for _ in hypotheses {
        read_line(stdout)?;
    }
    let total = read_line(stdout)?;
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
