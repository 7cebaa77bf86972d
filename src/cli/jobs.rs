//! `lorabeam jobs`, `watch`, `cancel` and `results`: following jobs on a coordinator.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use lorabeam_core::predictions::{format_prediction, PredictionFile};
use lorabeam_proto::v1::{CancelJobRequest, JobStatus, ListJobsRequest, StreamResultsRequest, WatchJobRequest};
use std::io::Write;

use lorabeam_proto::job_state_is_final;

use super::client::{block_on, check_final, status_line, Client, CoordinatorArgs};

#[derive(Debug, Args)]
pub struct JobsArgs {
    #[command(flatten)]
    pub coordinator: CoordinatorArgs,
}

#[derive(Debug, Args)]
pub struct JobArgs {
    /// The job's id, as `lorabeam submit` printed it.
    pub job_id: String,
    #[command(flatten)]
    pub coordinator: CoordinatorArgs,
}

#[derive(Debug, Args)]
pub struct ResultsArgs {
    /// The job's id.
    pub job_id: String,
    /// Write the ordered JSONL here (atomically) instead of to standard output.
    #[arg(long, env = "LORABEAM_OUTPUT")]
    pub output: Option<PathBuf>,
    /// First record id to fetch.
    #[arg(long, env = "LORABEAM_OFFSET", default_value_t = 0)]
    pub offset: u64,
    #[command(flatten)]
    pub coordinator: CoordinatorArgs,
}

pub fn jobs(args: JobsArgs) -> anyhow::Result<()> {
    block_on(async move {
        let mut client = args.coordinator.connect().await?;
        let jobs = client.list_jobs(ListJobsRequest {}).await.context("listing jobs")?.into_inner().jobs;
        if jobs.is_empty() {
            println!("no jobs");
        }
        for job in jobs {
            println!("{}", status_line(&job));
        }
        Ok(())
    })
}

pub fn watch(args: JobArgs) -> anyhow::Result<()> {
    block_on(async move {
        let mut client = args.coordinator.connect().await?;
        let last = follow(&mut client, &args.job_id, |s| println!("{}", status_line(s))).await?;
        check_final(&last)
    })
}

pub fn cancel(args: JobArgs) -> anyhow::Result<()> {
    block_on(async move {
        let mut client = args.coordinator.connect().await?;
        let request = CancelJobRequest { job_id: args.job_id.clone() };
        let status = client.cancel_job(request).await.with_context(|| format!("cancelling {}", args.job_id))?;
        println!("{}", status_line(status.get_ref()));
        Ok(())
    })
}

pub fn results(args: ResultsArgs) -> anyhow::Result<()> {
    block_on(async move {
        let mut client = args.coordinator.connect().await?;
        let lines = fetch_results(&mut client, &args.job_id, args.offset, args.output.as_deref()).await?;
        eprintln!("{lines} prediction(s) of {}", args.job_id);
        Ok(())
    })
}

/// Calls `on_event` with every status of a job until it is final; returns the final one.
pub async fn follow(
    client: &mut Client,
    job_id: &str,
    mut on_event: impl FnMut(&JobStatus),
) -> anyhow::Result<JobStatus> {
    let request = WatchJobRequest { job_id: job_id.to_string() };
    let mut events = client.watch_job(request).await.with_context(|| format!("watching {job_id}"))?.into_inner();
    while let Some(event) = events.message().await.with_context(|| format!("watching {job_id}"))? {
        if let Some(status) = event.status {
            on_event(&status);
            if job_state_is_final(status.state) {
                return Ok(status);
            }
        }
    }
    anyhow::bail!("the coordinator ended the watch of {job_id} before the job ended")
}

/// Streams a job's predictions in id order to `output` (atomically) or standard output.
pub async fn fetch_results(
    client: &mut Client,
    job_id: &str,
    offset: u64,
    output: Option<&Path>,
) -> anyhow::Result<usize> {
    let request = StreamResultsRequest { job_id: job_id.to_string(), offset };
    let mut stream = client.stream_results(request).await.with_context(|| format!("fetching {job_id}"))?.into_inner();
    let mut file = output.map(PredictionFile::create).transpose()?;
    let mut stdout = std::io::stdout().lock();
    let mut line = String::new();
    let mut count = 0;
    while let Some(prediction) = stream.message().await.with_context(|| format!("fetching {job_id}"))? {
        match &mut file {
            Some(file) => file.push(prediction.id as usize, &prediction.predict)?,
            None => {
                line.clear();
                format_prediction(&mut line, prediction.id as usize, &prediction.predict);
                stdout.write_all(line.as_bytes())?;
            }
        }
        count += 1;
    }
    if let Some(file) = file {
        file.finish()?;
    }
    Ok(count)
}
