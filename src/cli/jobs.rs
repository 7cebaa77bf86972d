//! `lorabeam jobs`, `watch`, `cancel` and `results`: following jobs on a coordinator.

use std::path::PathBuf;

use clap::Args;
use lorabeam_proto::v1::{CancelJobRequest, GetJobRequest, ListJobsRequest};

use super::client::{block_on, check_final, status_line, CoordinatorArgs, FollowingArgs};
use super::follow::{fetch_results, follow, ResultFormat};
use super::jobs_table::print_jobs;
use super::rpc::rpc_error;

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
pub struct WatchArgs {
    /// The job's id, as `lorabeam submit` printed it.
    pub job_id: String,
    #[command(flatten)]
    pub coordinator: FollowingArgs,
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
    pub coordinator: FollowingArgs,
}

pub fn jobs(args: JobsArgs) -> anyhow::Result<()> {
    block_on(async move {
        let mut client = args.coordinator.connect().await?;
        let (mut page_token, mut jobs) = (String::new(), Vec::new());
        loop {
            let request = ListJobsRequest { page_size: 0, page_token };
            let page = client.list_jobs(request).await.map_err(|s| rpc_error("listing jobs", &s))?.into_inner();
            jobs.extend(page.jobs);
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        print_jobs(&jobs);
        Ok(())
    })
}

pub fn watch(args: WatchArgs) -> anyhow::Result<()> {
    block_on(async move {
        let mut client = args.coordinator.connect().await?;
        let last =
            follow(&mut client, &args.job_id, &args.coordinator, None, |s| crate::outln!("{}", status_line(s))).await?;
        check_final(&last)
    })
}

/// Cancels, then prints the job's state once the cancel has settled: what was stored stays.
pub fn cancel(args: JobArgs) -> anyhow::Result<()> {
    block_on(async move {
        let mut client = args.coordinator.connect().await?;
        let what = format!("cancelling {}", args.job_id);
        let request = CancelJobRequest { job_id: args.job_id.clone() };
        client.cancel_job(request).await.map_err(|s| rpc_error(&what, &s))?;
        let request = GetJobRequest { job_id: args.job_id.clone() };
        let status = client.get_job(request).await.map_err(|s| rpc_error(&what, &s))?.into_inner();
        crate::outln!("{}", status_line(&status));
        Ok(())
    })
}

pub fn results(args: ResultsArgs) -> anyhow::Result<()> {
    block_on(async move {
        let mut client = args.coordinator.connect().await?;
        let format = if args.text { ResultFormat::Text } else { ResultFormat::Ids };

        let lines =
            fetch_results(&mut client, &args.job_id, args.offset, args.output.as_deref(), format, &args.coordinator)
                .await?;
        crate::errln!("{lines} prediction(s) of {}", args.job_id);
        Ok(())
    })
}
