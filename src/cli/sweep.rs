//! `lorabeam sweep`: one job per adapter over the same data and decoding flags, all followed
//! with one progress display; each adapter's ordered predictions go to `DIR/NAME.jsonl`, and a
//! table compares the adapters at the end.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use lorabeam_core::check_adapter_name;
use lorabeam_proto::v1::{JobState, JobStatus};
use lorabeam_proto::{job_state_is_final, job_state_name};

use super::client::{block_on, check_final, shown, status_line, Client, FollowingArgs};
use super::data::JobBytes;
use super::follow::{fetch_results, follow, ResultFormat};
use super::progress::{Progress, PROGRESS_LINE_EVERY};
use super::submit::{send_job, JobOptions};
use super::sweep_table::{sweep_table, SweepRow};

#[derive(Debug, Args)]
pub struct SweepArgs {
    #[command(flatten)]
    pub coordinator: FollowingArgs,
    #[command(flatten)]
    pub job: JobOptions,
    /// An adapter of the sweep, by name under the workers' --adapter-dir: repeat it (or give a
    /// comma-separated list) for each adapter; each gets its own job.
    #[arg(long = "adapter", env = "LORABEAM_SWEEP_ADAPTERS", value_delimiter = ',', required = true)]
    pub adapters: Vec<String>,
    /// Where each adapter's ordered predictions are written, as NAME.jsonl.
    #[arg(long, env = "LORABEAM_OUTPUT_DIR")]
    pub output_dir: PathBuf,
}

/// One submitted job of the sweep.
struct SweepJob {
    adapter: String,
    job_id: String,
    records: u64,
}

/// How a job of the sweep ended: its last status and the predictions written.
struct Ended {
    status: JobStatus,
    lines: usize,
}

pub fn sweep(args: SweepArgs) -> anyhow::Result<()> {
    check_adapters(&args.adapters)?;
    std::fs::create_dir_all(&args.output_dir)
        .with_context(|| format!("cannot create --output-dir {}", args.output_dir.display()))?;
    let data = JobBytes::read(&args.job.data)?;
    block_on(async move {
        let mut client = args.coordinator.connect().await?;
        let mut jobs = Vec::new();
        for adapter in &args.adapters {
            let spec = args.job.spec(adapter, "")?;
            let response = send_job(&mut client, spec, &data)
                .await
                .with_context(|| format!("submitting the job of adapter {}", shown(adapter)))?;
            crate::outln!("{}  {}", shown(&response.job_id), shown(adapter));
            jobs.push(SweepJob { adapter: adapter.clone(), job_id: response.job_id, records: response.records });
        }
        let ended = follow_all(&client, &jobs, &args.output_dir, &args.coordinator).await?;
        let rows: Vec<SweepRow> = jobs.iter().zip(&ended).map(|(job, ended)| row(job, ended)).collect();
        for line in sweep_table(&rows, args.job.score) {
            crate::outln!("{line}");
        }
        let failed: Vec<String> = jobs
            .iter()
            .zip(&ended)
            .filter_map(|(job, ended)| {
                check_final(&ended.status).err().map(|e| format!("adapter {}: {e:#}", shown(&job.adapter)))
            })
            .collect();
        if !failed.is_empty() {
            anyhow::bail!("{} of {} job(s) did not complete: {}", failed.len(), jobs.len(), failed.join("; "));
        }
        Ok(())
    })
}

/// Every adapter name is checked here as the coordinator will, and must be unique: it names an
/// output file.
fn check_adapters(adapters: &[String]) -> anyhow::Result<()> {
    let mut seen = HashSet::new();
    for adapter in adapters {
        check_adapter_name(adapter).with_context(|| "--adapter")?;
        if !seen.insert(adapter.as_str()) {
            anyhow::bail!("--adapter {adapter} is given twice: each adapter of a sweep writes its own NAME.jsonl");
        }
    }
    Ok(())
}

fn row(job: &SweepJob, ended: &Ended) -> SweepRow {
    let s = &ended.status;
    let seconds = (s.finished_unix_ms - s.created_unix_ms).max(0) as f64 / 1000.0;
    SweepRow {
        adapter: job.adapter.clone(),
        state: job_state_name(s.state),
        lines: ended.lines,
        seconds,
        tokens_per_s: s.tokens_per_s,
        scores: s.scores.clone(),
    }
}

/// Follows every job at once (each on its own task, retrying as `watch` does), showing their
/// progress together, and writes each one's predictions when it ends.
async fn follow_all(
    client: &Client,
    jobs: &[SweepJob],
    dir: &Path,
    coordinator: &FollowingArgs,
) -> anyhow::Result<Vec<Ended>> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, JobStatus)>();
    let mut tasks = Vec::new();
    for (index, job) in jobs.iter().enumerate() {
        let (mut client, tx, coordinator) = (client.clone(), tx.clone(), coordinator.clone());
        let (job_id, output) = (job.job_id.clone(), dir.join(format!("{}.jsonl", job.adapter)));
        tasks.push(tokio::spawn(async move {
            let status = follow(&mut client, &job_id, &coordinator, None, |s| {
                let _ = tx.send((index, s.clone()));
            })
            .await?;
            // A job that ended short still has what it decoded written; its state says why.
            let fetched = fetch_results(&mut client, &job_id, 0, Some(&output), ResultFormat::Ids, &coordinator).await;
            let lines = match fetched {
                Ok(lines) => lines,
                // Ended short (failed, cancelled): the file holds every stored prediction.
                Err(_) if status.state != JobState::Completed as i32 => written_lines(&output),
                Err(e) => return Err(e),
            };
            Ok::<Ended, anyhow::Error>(Ended { status, lines })
        }));
    }
    drop(tx);
    let mut progress = Progress::new(jobs.iter().map(|j| j.records).sum());
    let mut statuses: Vec<Option<JobStatus>> = vec![None; jobs.len()];
    loop {
        match tokio::time::timeout(PROGRESS_LINE_EVERY, rx.recv()).await {
            Ok(Some((index, status))) => statuses[index] = Some(status),
            Ok(None) => break,
            Err(_) => {}
        }
        show(&mut progress, jobs, &statuses, false);
    }
    show(&mut progress, jobs, &statuses, true);
    progress.finish();
    let mut ended = Vec::new();
    for (job, task) in jobs.iter().zip(tasks) {
        let what = || format!("following the job of adapter {}", shown(&job.adapter));
        ended.push(task.await.with_context(what)?.with_context(what)?);
    }
    Ok(ended)
}

/// Lines of a predictions file written (0 when there is none).
fn written_lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map(|text| text.lines().count()).unwrap_or(0)
}

/// The sweep's progress: all records on the bar; a line per job in a log.
fn show(progress: &mut Progress, jobs: &[SweepJob], statuses: &[Option<JobStatus>], last: bool) {
    let done: u64 = statuses.iter().flatten().map(|s| s.records_done).sum();
    let finished = statuses.iter().flatten().filter(|s| job_state_is_final(s.state)).count();
    let lines = || {
        jobs.iter()
            .zip(statuses)
            .map(|(job, status)| match status {
                Some(status) => status_line(status),
                None => format!("{}  waiting  adapter {}", shown(&job.job_id), shown(&job.adapter)),
            })
            .collect()
    };
    progress.update(done, format!("{finished}/{} jobs done", jobs.len()), lines, last);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapters_are_checked_and_unique() {
        assert!(check_adapters(&["a".into(), "b".into()]).is_ok());
        let err = check_adapters(&["a".into(), "a".into()]).expect_err("twice");
        assert!(err.to_string().contains("--adapter a is given twice"), "{err}");
        let err = format!("{:#}", check_adapters(&["../a".into()]).expect_err("a path"));
        assert!(err.contains("--adapter: adapter `../a` holds `/`"), "{err}");
    }
}
