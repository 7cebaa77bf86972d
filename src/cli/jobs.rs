//! `lorabeam jobs`, `watch`, `cancel` and `results`: following jobs on a coordinator.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use lorabeam_core::predictions::{format_prediction, PredictionFile};
use lorabeam_core::text::{cut_at_end, decode};
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
    /// Print each prediction as GPT-2 text, `{"id": N, "text": "..."}`, cut at
    /// <|endoftext|> and stripped as gpt2_decode.py cuts it.
    #[arg(long, env = "LORABEAM_TEXT")]
    pub text: bool,
    #[command(flatten)]
    pub coordinator: CoordinatorArgs,
}

pub fn jobs(args: JobsArgs) -> anyhow::Result<()> {
    block_on(async move {
        let mut client = args.coordinator.connect().await?;
        let (mut page_token, mut any) = (String::new(), false);
        loop {
            let request = ListJobsRequest { page_size: 0, page_token };
            let page = client.list_jobs(request).await.context("listing jobs")?.into_inner();
            for job in &page.jobs {
                println!("{}", status_line(job));
                any = true;
            }
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        if !any {
            println!("no jobs");
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
        let format = if args.text { ResultFormat::Text } else { ResultFormat::Ids };
        let lines = fetch_results(&mut client, &args.job_id, args.offset, args.output.as_deref(), format).await?;
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

/// How `results` writes each prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultFormat {
    /// The reference's `{"id": N, "predict": [ids]}`.
    Ids,
    /// `{"id": N, "text": "..."}`, decoded and cut as gpt2_decode.py does.
    Text,
}

/// One prediction as a line of `format`.
fn result_line(line: &mut String, id: usize, predict: &[u32], format: ResultFormat) -> anyhow::Result<()> {
    line.clear();
    match format {
        ResultFormat::Ids => format_prediction(line, id, predict),
        ResultFormat::Text => {
            let text = decode(predict).with_context(|| format!("decoding the prediction of id {id}"))?;
            line.push_str(&serde_json::json!({ "id": id, "text": cut_at_end(&text) }).to_string());
            line.push('\n');
        }
    }
    Ok(())
}

/// Streams a job's predictions in id order to `output` (atomically) or standard output.
pub async fn fetch_results(
    client: &mut Client,
    job_id: &str,
    offset: u64,
    output: Option<&Path>,
    format: ResultFormat,
) -> anyhow::Result<usize> {
    let request = StreamResultsRequest { job_id: job_id.to_string(), offset };
    let mut stream = client.stream_results(request).await.with_context(|| format!("fetching {job_id}"))?.into_inner();
    let mut file = output.map(PredictionFile::create).transpose()?;
    let mut stdout = std::io::stdout().lock();
    let mut line = String::new();
    let mut count = 0;
    while let Some(prediction) = stream.message().await.with_context(|| format!("fetching {job_id}"))? {
        let id = usize::try_from(prediction.id).context("a prediction id past this machine's usize")?;
        result_line(&mut line, id, &prediction.predict, format)?;
        match &mut file {
            Some(file) => file.push_line(&line)?,
            None => stdout.write_all(line.as_bytes())?,
        }
        count += 1;
    }
    if let Some(file) = file {
        file.finish()?;
    }
    Ok(count)
}
