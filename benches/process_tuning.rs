//! The process settings `lorabeam` applies at start (glibc's malloc thresholds, libgomp's
//! passive wait policy, threads from the CPUs the process may use), measured side by side: each
//! setting is a child `lorabeam run` of the same job, run in ABBA order so drifting load from
//! other processes falls on both sides, and each child reports its own decoding cost
//! (`threads:` line of the summary: user and system seconds, minor page faults).
//!
//! `cargo bench --bench process_tuning -- allocator` compares `LORABEAM_PROCESS_TUNING` on and
//! off (minor faults and system time per token); `-- threads` compares the default thread count
//! with every `--threads` from 1 to the CPUs, idle and with one competing busy-loop process.
//! Models: the tiny trained fixture (tests/conformance/fixture-tiny) and a random gpt2.sm-shaped
//! checkpoint written by `lorabeam fixture`. `LORABEAM_BENCH_LINES_TINY` (20) and
//! `LORABEAM_BENCH_LINES_SM` (8) set the lines decoded, `LORABEAM_BENCH_ROUNDS` (1) the ABBA
//! rounds; `LORABEAM_BENCH_MODEL=tiny` (or `sm`) keeps only that model.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context};

const LORABEAM: &str = env!("CARGO_BIN_EXE_lorabeam");
const DATA: &str = "tests/conformance/data/e2e_test_public.jsonl";

/// One model and the job decoded with it.
struct Job {
    name: &'static str,
    dir: PathBuf,
    lines: usize,
    eval_len: usize,
}

/// One way of running the job: a name for the table, extra flags, extra environment.
type Setting = (String, Vec<String>, Vec<(&'static str, &'static str)>);

/// One child run's figures, from its summary.
#[derive(Debug, Default, Clone, Copy)]
struct Figures {
    seconds: f64,
    user: f64,
    system: f64,
    faults: f64,
    tokens: f64,
}

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::env::set_current_dir(root)?;
    let which: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let want = |name: &str| which.is_empty() || which.iter().any(|w| w == name);
    let scratch = tempfile::tempdir()?;
    let only = std::env::var("LORABEAM_BENCH_MODEL").unwrap_or_default();
    let jobs: Vec<Job> = jobs(scratch.path())?.into_iter().filter(|job| job.name.contains(only.as_str())).collect();
    println!("load before: {}", load_average());
    if want("allocator") {
        allocator(&jobs, scratch.path())?;
    }
    if want("threads") {
        threads(&jobs, scratch.path())?;
    }
    println!("load after: {}", load_average());
    Ok(())
}

/// The tiny fixture as the demo runs it, and a gpt2.sm-shaped random checkpoint.
fn jobs(scratch: &Path) -> anyhow::Result<Vec<Job>> {
    let sm = scratch.join("gpt2-sm");
    let status = Command::new(LORABEAM)
        .args(["fixture", "--out"])
        .arg(&sm)
        .args(["--n_embd", "768", "--n_layer", "12", "--n_head", "12", "--n_positions", "1024", "--lines", "1"])
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("lorabeam fixture failed: {status}");
    }
    Ok(vec![
        Job {
            name: "tiny fixture",
            dir: "tests/conformance/fixture-tiny".into(),
            lines: env_usize("LORABEAM_BENCH_LINES_TINY", 20),
            eval_len: 64,
        },
        Job { name: "gpt2.sm shape", dir: sm, lines: env_usize("LORABEAM_BENCH_LINES_SM", 8), eval_len: 32 },
    ])
}

/// Runs `job` once with `extra` flags and `env`, and reads its summary.
fn decode(job: &Job, scratch: &Path, extra: &[String], env: &[(&str, &str)]) -> anyhow::Result<Figures> {
    let data = scratch.join(format!("{}-lines.jsonl", job.lines));
    if !data.exists() {
        let text = std::fs::read_to_string(DATA)?;
        let lines: Vec<&str> = text.lines().take(job.lines).collect();
        std::fs::write(&data, lines.join("\n") + "\n")?;
    }
    let eval_len = job.eval_len.to_string();
    let output = Command::new(LORABEAM)
        .arg("run")
        .arg("--data")
        .arg(&data)
        .arg("--init_checkpoint")
        .arg(job.dir.join("lora_full.pt"))
        .arg("--model_config")
        .arg(job.dir.join("config.json"))
        .args(["--lora_dim", "4", "--lora_alpha", "32", "--beam", "10", "--length_penalty", "0.8"])
        .args(["--no_repeat_ngram_size", "4", "--repetition_penalty", "1.0", "--eos_token_id", "628"])
        .args(["--eval_len", &eval_len, "--seq_len", "256", "--batch_size", "1", "--device", "cpu"])
        .arg("--work_dir")
        .arg(scratch.join("out"))
        .args(extra)
        .env_remove("LORABEAM_THREADS")
        .env_remove("GLIBC_TUNABLES")
        .env_remove("OMP_WAIT_POLICY")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!("lorabeam run failed ({}): {stderr}", output.status);
    }
    parse_summary(&stderr).with_context(|| format!("no summary in: {stderr}"))
}

/// The number just before `suffix` in `text` (the last whitespace-separated word ending in it).
fn number_before(text: &str, suffix: &str) -> Option<f64> {
    let at = text.find(suffix)?;
    text[..at].split_whitespace().last()?.trim_end_matches('s').parse().ok()
}

fn parse_summary(stderr: &str) -> Option<Figures> {
    let decoded = stderr.lines().find(|l| l.starts_with("decoded "))?;
    let process = stderr.lines().find(|l| l.starts_with("threads: "))?;
    let seconds = decoded.split(" in ").nth(1)?.split('s').next()?.parse().ok()?;
    Some(Figures {
        seconds,
        tokens: number_before(decoded, " generated tokens")?,
        user: number_before(process, " user")?,
        system: number_before(process, " system")?,
        faults: number_before(process, " minor page faults")?,
    })
}

/// Runs every setting `rounds` times in ABBA… order and returns each setting's mean.
fn side_by_side(settings: &[Setting], job: &Job, scratch: &Path) -> anyhow::Result<Vec<Figures>> {
    let rounds = env_usize("LORABEAM_BENCH_ROUNDS", 1);
    let mut sums = vec![Figures::default(); settings.len()];
    let mut counts = vec![0usize; settings.len()];
    for round in 0..rounds * 2 {
        let order: Vec<usize> =
            if round % 2 == 0 { (0..settings.len()).collect() } else { (0..settings.len()).rev().collect() };
        for i in order {
            let (_, flags, env) = &settings[i];
            let f = decode(job, scratch, flags, env)?;
            let s = &mut sums[i];
            (s.seconds, s.user, s.system, s.faults, s.tokens) =
                (s.seconds + f.seconds, s.user + f.user, s.system + f.system, s.faults + f.faults, s.tokens + f.tokens);
            counts[i] += 1;
        }
    }
    Ok(sums
        .iter()
        .zip(&counts)
        .map(|(s, &n)| {
            let n = n as f64;
            Figures {
                seconds: s.seconds / n,
                user: s.user / n,
                system: s.system / n,
                faults: s.faults / n,
                tokens: s.tokens / n,
            }
        })
        .collect())
}

fn allocator(jobs: &[Job], scratch: &Path) -> anyhow::Result<()> {
    println!("\n## allocator: lorabeam's settings, malloc only off, both off; default threads, ABBA\n");
    println!("| model | lines | setting | decode s | user s | system s | minor faults / token | system ms / token |");
    println!("|---|---|---|---|---|---|---|---|");
    // The middle setting isolates the allocator: glibc's defaults, libgomp still passive.
    let settings: Vec<Setting> = vec![
        ("on (default)".to_string(), vec![], vec![]),
        (
            "malloc off: LORABEAM_PROCESS_TUNING=off OMP_WAIT_POLICY=PASSIVE".to_string(),
            vec![],
            vec![("LORABEAM_PROCESS_TUNING", "off"), ("OMP_WAIT_POLICY", "PASSIVE")],
        ),
        ("both off: LORABEAM_PROCESS_TUNING=off".to_string(), vec![], vec![("LORABEAM_PROCESS_TUNING", "off")]),
    ];
    for job in jobs {
        let figures = side_by_side(&settings, job, scratch)?;
        for ((name, _, _), f) in settings.iter().zip(&figures) {
            println!(
                "| {} | {} | {name} | {:.2} | {:.2} | {:.2} | {:.1} | {:.3} |",
                job.name,
                job.lines,
                f.seconds,
                f.user,
                f.system,
                f.faults / f.tokens,
                1e3 * f.system / f.tokens
            );
        }
    }
    Ok(())
}

/// One busy-loop process on one CPU, killed when dropped.
struct Competitor(Child);

impl Competitor {
    fn start() -> anyhow::Result<Competitor> {
        Ok(Competitor(Command::new("sh").args(["-c", "while :; do :; done"]).spawn()?))
    }
}

impl Drop for Competitor {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn threads(jobs: &[Job], scratch: &Path) -> anyhow::Result<()> {
    let cpus = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
    println!("\n## threads: default against --threads 1..{cpus}, ABBA\n");
    println!("| model | lines | competing busy process | setting | decode s | user s | ratio to best |");
    println!("|---|---|---|---|---|---|---|");
    let mut settings: Vec<Setting> = vec![
        ("default".to_string(), vec![], vec![]),
        ("default, LORABEAM_PROCESS_TUNING=off".to_string(), vec![], vec![("LORABEAM_PROCESS_TUNING", "off")]),
    ];
    for n in 1..=cpus {
        settings.push((format!("--threads {n}"), vec!["--threads".to_string(), n.to_string()], vec![]));
    }
    for job in jobs {
        for busy in [false, true] {
            let _competitor = if busy { Some(Competitor::start()?) } else { None };
            let figures = side_by_side(&settings, job, scratch)?;
            // The best explicit thread count, with lorabeam's settings.
            let best = figures[2..].iter().map(|f| f.seconds).fold(f64::INFINITY, f64::min);
            for ((name, _, _), f) in settings.iter().zip(&figures) {
                println!(
                    "| {} | {} | {} | {name} | {:.2} | {:.2} | {:.2} |",
                    job.name,
                    job.lines,
                    if busy { "yes" } else { "no" },
                    f.seconds,
                    f.user,
                    f.seconds / best
                );
            }
        }
    }
    Ok(())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_string()
}
