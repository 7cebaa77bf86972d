//! `lorabeam submit`: sends a test JSONL to a coordinator as a job, and with `--wait` follows
//! it and writes its ordered predictions. `lorabeam sweep` sends its jobs the same way.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use lorabeam_core::eval::E2eScores;
use lorabeam_core::text::{CategoryFilter, ScoreTask};
use lorabeam_proto::submission::DataDigest;
use lorabeam_proto::v1::{self, JobSpec, RecordChunk, SubmitItem, SubmitJobRequest, SubmitJobResponse};

use super::client::{block_on, check_final, shown, status_line, Client, FollowingArgs};
use super::data::{JobBytes, ENCODED_FROM_TEXT};
use super::follow::{fetch_results, follow, ResultFormat};
use super::model_args::DecodeArgs;
use super::progress::Progress;
use super::rpc::status_text;
use super::score::print_scores;
use super::task_table::print_report_json;

/// Bytes of JSONL per SubmitJob message.
const CHUNK_BYTES: usize = 1 << 20;

/// What a job is made of, as `submit` and `sweep` both take it.
#[derive(Debug, Args)]
pub struct JobOptions {
    /// The model id to decode with: workers serving it take the job.
    #[arg(long, env = "LORABEAM_MODEL_ID")]
    pub model_id: String,
    /// Test JSONL: one {"context": [ids], "completion": [ids]} per line, or its text form
    /// {"context": "...", "completion": "..."}, encoded here as gpt2_encode.py --add_bos
    /// --add_eos would before it is sent. Read once, so a pipe works (`/dev/stdin`, `<(...)`).
    /// An object URL (s3://BUCKET/KEY, gs://, az://) is read by the coordinator itself, with
    /// its credentials: a large test set never passes through this machine.
    #[arg(long, env = "LORABEAM_DATA")]
    pub data: PathBuf,
    /// Distinct contexts per shard; 0 uses the coordinator's default.
    #[arg(long, env = "LORABEAM_SHARD_SIZE", default_value_t = 0)]
    pub shard_size: u32,
    /// gpt2_beam.py's --batch_size: with beam > 1 it decides the reference's first step.
    #[arg(long = "batch_size", env = "LORABEAM_BATCH_SIZE", default_value_t = 10)]
    pub batch_size: u32,
    /// Pick every line's first token from its own context (see `lorabeam run --help`).
    #[arg(long = "exact_first_step", env = "LORABEAM_EXACT_FIRST_STEP")]
    pub exact_first_step: bool,
    /// Have the coordinator score the job against each line's completion when it completes, as
    /// --task's users do (see `lorabeam score --help`); when followed, print the scores at the end.
    #[arg(long, env = "LORABEAM_SCORE")]
    pub score: bool,
    /// With --score: e2e (BLEU, NIST, METEOR, ROUGE-L, CIDEr), webnlg or dart (gpt2_decode.py
    /// --tokenize --lower, then eval.py's BLEU, BLEU NLTK, METEOR, TER, chrF++).
    #[arg(long, env = "LORABEAM_TASK", default_value = "e2e", requires = "score")]
    pub task: ScoreTask,
    /// With --task webnlg: gpt2_decode.py's --filter (all, seen, unseen; the text lines' `cate`,
    /// sent with the job). Default: the paper's S, U and A rows when every line has one.
    #[arg(long, env = "LORABEAM_FILTER", requires = "score")]
    pub filter: Option<CategoryFilter>,
    /// With --task webnlg or dart: gpt2_decode.py's --ref_num, eval.py's -nr (default 6).
    #[arg(long = "ref_num", alias = "ref-num", env = "LORABEAM_REF_NUM", requires = "score")]
    pub ref_num: Option<u32>,
    #[command(flatten)]
    pub decode: DecodeArgs,
}

impl JobOptions {
    /// The job's spec with `adapter` ("" for the bare base).
    pub fn spec(&self, adapter: &str, idempotency_key: &str) -> anyhow::Result<JobSpec> {
        Ok(JobSpec {
            model_id: self.model_id.clone(),
            params: Some(v1::DecodeParams::try_from(&self.decode.params())?),
            shard_size: self.shard_size,
            idempotency_key: idempotency_key.to_string(),
            name: self.data.display().to_string(),
            reference_batch_size: self.batch_size,
            exact_first_step: self.exact_first_step,
            score: self.score,
            adapter: adapter.to_string(),
            task: if self.task == ScoreTask::E2e { String::new() } else { self.task.name().to_string() },
            ref_num: self.ref_num.unwrap_or(0),
            filter: self.filter.map(|f| f.name().to_string()).unwrap_or_default(),
            // Set by `send_job` for data in object storage.
            data_url: String::new(),
        })
    }
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    pub coordinator: FollowingArgs,
    #[command(flatten)]
    pub job: JobOptions,
    /// The adapter to decode with, by name: each worker finds it under its --adapter-dir (a
    /// PEFT directory NAME/ or a loralib NAME.pt). Not given: the workers' bare base.
    #[arg(long, env = "LORABEAM_ADAPTER", default_value = "")]
    pub adapter: String,
    /// Resubmitting with the same key returns the first job instead of starting another.
    #[arg(long, env = "LORABEAM_IDEMPOTENCY_KEY", default_value = "")]
    pub idempotency_key: String,
    /// Follow the job until it ends (implied by --output).
    #[arg(long, env = "LORABEAM_WAIT")]
    pub wait: bool,
    /// Write the ordered predictions JSONL here when the job completes.
    #[arg(long, env = "LORABEAM_OUTPUT")]
    pub output: Option<PathBuf>,
    /// With --score: print the scores as one JSON line instead of a table.
    #[arg(long, env = "LORABEAM_JSON", requires = "score")]
    pub json: bool,
}

pub fn submit(args: SubmitArgs) -> anyhow::Result<()> {
    block_on(async move {
        let spec = args.job.spec(&args.adapter, &args.idempotency_key)?;
        let data = JobBytes::read(&args.job.data)?;
        let mut client = args.coordinator.connect().await?;
        let response = send_job(&mut client, spec, &data).await?;
        let job_id = response.job_id;
        if !(args.wait || args.output.is_some()) {
            crate::outln!("{}", shown(&job_id));
            return Ok(());
        }
        // Listening before the id is shown: a Ctrl-C from then on gets its message, never the
        // silent default death.
        let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .context("listening for Ctrl-C")?;
        crate::outln!("{}", shown(&job_id));
        tokio::select! {
            followed = wait_for(&args, &mut client, &job_id, response.records) => followed,
            _ = interrupt.recv() => {
                // Following is all this process does: the job is the coordinator's.
                let id = shown(&job_id);
                crate::errln!(
                    "interrupted: job {id} keeps running on the coordinator; `lorabeam watch {id}` follows it \
                     again, `lorabeam results {id}` fetches its predictions, `lorabeam cancel {id}` stops it"
                );
                std::process::exit(INTERRUPTED_EXIT_CODE)
            }
        }
    })
}

/// Exit status after Ctrl-C, as a shell reports a process ended by SIGINT (128 + 2).
pub const INTERRUPTED_EXIT_CODE: i32 = 130;

/// `submit --wait`: follows the job to its end, writes --output and prints --score's scores.
async fn wait_for(args: &SubmitArgs, client: &mut Client, job_id: &str, records: u64) -> anyhow::Result<()> {
    let mut progress = Progress::new(records);
    let show = |s: &v1::JobStatus, p: &mut Progress| {
        let last = lorabeam_proto::job_state_is_final(s.state);
        let mut message = format!("{:.0} tokens/s", s.tokens_per_s);
        if !s.stall.is_empty() {
            message.push_str(&format!("  stalled: {}", super::client::shown(&s.stall)));
        }
        p.update(s.records_done, message, || vec![status_line(s)], last);
    };
    let last = follow(client, job_id, &args.coordinator, progress.heartbeat(), |s| show(s, &mut progress)).await?;
    progress.finish();
    // Whatever decoded is written, even when some records failed.
    if let Some(output) = &args.output {
        let lines = fetch_results(client, job_id, 0, Some(output), ResultFormat::Ids, &args.coordinator).await?;
        crate::errln!("wrote {lines} predictions to {}", output.display());
    }
    if args.job.score {
        print_job_scores(&last, args.json);
    }
    check_final(&last)
}

/// Sends one job (its spec, `data` in chunks, the end) and says on stderr what was queued.
pub async fn send_job(client: &mut Client, mut spec: JobSpec, data: &JobBytes) -> anyhow::Result<SubmitJobResponse> {
    let adapter = spec.adapter.clone();
    spec.data_url = data.data_url.clone().unwrap_or_default();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let jsonl = Arc::clone(&data.jsonl);
    tokio::spawn(async move {
        if tx.send(SubmitJobRequest { item: Some(SubmitItem::Spec(spec)) }).await.is_err() {
            return;
        }
        let mut digest = DataDigest::default();
        for chunk in jsonl.chunks(CHUNK_BYTES) {
            digest.update(chunk);
            let message = SubmitJobRequest { item: Some(SubmitItem::Chunk(RecordChunk { jsonl: chunk.to_vec() })) };
            if tx.send(message).await.is_err() {
                return;
            }
        }
        let _ = tx.send(SubmitJobRequest { item: Some(SubmitItem::End(digest.end())) }).await;
    });
    let request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    let response = client
        .submit_job(request)
        .await
        .map_err(|status| anyhow::anyhow!("{}", status_text(&status)))
        .with_context(|| format!("the coordinator refused {}", data.path.display()))?
        .into_inner();
    crate::errln!(
        "{} job {}{}: {} records{}, {} distinct contexts, {} shards",
        if response.existing { "existing" } else { "submitted" },
        shown(&response.job_id),
        if adapter.is_empty() { String::new() } else { format!(" (adapter {})", shown(&adapter)) },
        response.records,
        if data.encoded_from_text { format!(" ({ENCODED_FROM_TEXT})") } else { String::new() },
        response.distinct_items,
        response.shards
    );
    Ok(response)
}

/// The scores a completed job carries, as `lorabeam score` prints them.
fn print_job_scores(status: &v1::JobStatus, json: bool) {
    match &status.scores {
        Some(scores) if !scores.task_report_json.is_empty() => print_report_json(&scores.task_report_json, json),
        Some(scores) => print_scores(&E2eScores::from(scores), json),
        None if !status.scores_error.is_empty() => {
            crate::errln!("job {} was not scored: {}", shown(&status.job_id), shown(&status.scores_error))
        }
        None => crate::errln!("job {} has no scores", shown(&status.job_id)),
    }
}
