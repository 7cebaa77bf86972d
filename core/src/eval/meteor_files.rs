//! METEOR the way WebNLG/GenerationEval's eval.py runs it: the hypotheses one per line and
//! the references `N` per item in two files, `java -Xmx2G -jar meteor-1.5.jar HYP REF -l en
//! -norm -r N`, the number on its `Final score:` line. A fresh JVM per call: only for texts
//! the kept `-stdio` JVM cannot carry (a text holding `|||`).

use std::process::Command;

use super::error::MeteorUnavailable;
use super::meteor::MeteorRunner;

pub(super) fn score_with_files(
    runner: &MeteorRunner,
    references: &[Vec<String>],
    hypotheses: &[String],
) -> Result<f64, MeteorUnavailable> {
    let fail = |why: String| MeteorUnavailable::new(why);
    let per_item = references.first().map_or(0, Vec::len);
    if per_item == 0 || references.iter().any(|refs| refs.len() != per_item) {
        return Err(fail("METEOR -r N needs the same number of references for every item".into()));
    }
    let dir = tempfile::tempdir().map_err(|e| fail(format!("a folder for METEOR's files: {e}")))?;
    let (hyp_path, ref_path) = (dir.path().join("hypothesis_meteor"), dir.path().join("reference_meteor"));
    let linear: Vec<&str> = references.iter().flatten().map(String::as_str).collect();
    std::fs::write(&hyp_path, hypotheses.join("\n"))
        .and_then(|()| std::fs::write(&ref_path, linear.join("\n")))
        .map_err(|e| fail(format!("writing METEOR's files: {e}")))?;
    let jar_dir = runner.jar().parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let output = Command::new(runner.java())
        .arg("-Xmx2G")
        .arg("-jar")
        .arg(runner.jar().file_name().unwrap_or(runner.jar().as_os_str()))
        .arg(&hyp_path)
        .arg(&ref_path)
        .args(["-l", "en", "-norm", "-r"])
        .arg(per_item.to_string())
        .current_dir(jar_dir)
        .output()
        .map_err(|e| fail(format!("cannot start {}: {e}", runner.java().display())))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let score = stdout.lines().find_map(|line| line.strip_prefix("Final score:")).map(str::trim);
    match score.map(str::parse::<f64>) {
        Some(Ok(score)) if output.status.success() => Ok(score),
        _ => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: String = stderr.trim().chars().rev().take(400).collect::<Vec<_>>().into_iter().rev().collect();
            Err(fail(format!("METEOR jar gave no final score ({}): {tail}", output.status)))
        }
    }
}
