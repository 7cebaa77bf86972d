//! `lorabeam submit`: sends a test JSONL to a coordinator as a job, and with `--wait` follows
//! it and writes its ordered predictions.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use lorabeam_core::eval::E2eScores;
use lorabeam_core::text::{detect_file_form, read_text_records, EncodeOptions, JsonlForm};
use lorabeam_proto::submission::DataDigest;
use lorabeam_proto::v1::{self, JobSpec, RecordChunk, SubmitItem, SubmitJobRequest};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::client::{block_on, check_final, shown, CoordinatorArgs};
use super::data::{ids_jsonl, ENCODED_FROM_TEXT};
use super::follow::{fetch_results, follow, ResultFormat};
use super::model_args::DecodeArgs;
use super::rpc::status_text;
use super::score::print_scores;

/// Bytes of JSONL per SubmitJob message.
const CHUNK_BYTES: usize = 1 << 20;

#[derive(Debug, Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    pub coordinator: CoordinatorArgs,
    /// The model id to decode with: workers serving it take the job.
    #[arg(long, env = "LORABEAM_MODEL_ID")]
    pub model_id: String,
    /// Test JSONL: one {"context": [ids], "completion": [ids]} per line, or its text form
    /// {"context": "...", "completion": "..."}, encoded here as gpt2_encode.py --add_bos
    /// --add_eos would before it is sent.
    #[arg(long, env = "LORABEAM_DATA")]
    pub data: PathBuf,
    /// Distinct contexts per shard; 0 uses the coordinator's default.
    #[arg(long, env = "LORABEAM_SHARD_SIZE", default_value_t = 0)]
    pub shard_size: u32,
    /// Resubmitting with the same key returns the first job instead of starting another.
    #[arg(long, env = "LORABEAM_IDEMPOTENCY_KEY", default_value = "")]
    pub idempotency_key: String,
    /// gpt2_beam.py's --batch_size: with beam > 1 it decides the reference's first step.
    #[arg(long = "batch_size", env = "LORABEAM_BATCH_SIZE", default_value_t = 10)]
    pub batch_size: u32,
    /// Pick every line's first token from its own context (see `lorabeam run --help`).
    #[arg(long = "exact_first_step", env = "LORABEAM_EXACT_FIRST_STEP")]
    pub exact_first_step: bool,
    /// Follow the job until it ends (implied by --output).
    #[arg(long, env = "LORABEAM_WAIT")]
    pub wait: bool,
    /// Write the ordered predictions JSONL here when the job completes.
    #[arg(long, env = "LORABEAM_OUTPUT")]
    pub output: Option<PathBuf>,
    /// Have the coordinator score the job against each line's completion when it completes
    /// (BLEU, NIST, METEOR, ROUGE-L, CIDEr); with --wait, print the scores at the end.
    #[arg(long, env = "LORABEAM_SCORE")]
    pub score: bool,
    /// With --score: print the scores as one JSON line instead of a table.
    #[arg(long, env = "LORABEAM_JSON", requires = "score")]
    pub json: bool,
    #[command(flatten)]
    pub decode: DecodeArgs,
}

pub fn submit(args: SubmitArgs) -> anyhow::Result<()> {
    block_on(async move {
        let (mut file, encoded_from_text) = open_data(&args.data).await?;
        let spec = JobSpec {
            model_id: args.model_id.clone(),
            params: Some(v1::DecodeParams::try_from(&args.decode.params())?),
            shard_size: args.shard_size,
            idempotency_key: args.idempotency_key.clone(),
            name: args.data.display().to_string(),
            reference_batch_size: args.batch_size,
            exact_first_step: args.exact_first_step,
            score: args.score,
        };
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let mut client = args.coordinator.connect().await?;
        let data = args.data.clone();
        let sender = tokio::spawn(async move {
            if tx.send(SubmitJobRequest { item: Some(SubmitItem::Spec(spec)) }).await.is_err() {
                return Ok::<(), std::io::Error>(());
            }
            // On a read error the stream ends without its DataEnd: the coordinator refuses it
            // whole rather than queue the part it got.
            let mut digest = DataDigest::default();
            loop {
                let mut chunk = Vec::with_capacity(CHUNK_BYTES);
                let read = (&mut file).take(CHUNK_BYTES as u64).read_to_end(&mut chunk).await?;
                if read == 0 {
                    let _ = tx.send(SubmitJobRequest { item: Some(SubmitItem::End(digest.end())) }).await;
                    return Ok(());
                }
                digest.update(&chunk);
                let message = SubmitJobRequest { item: Some(SubmitItem::Chunk(RecordChunk { jsonl: chunk })) };
                if tx.send(message).await.is_err() {
                    return Ok(());
                }
            }
        });
        let request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
        let response = client.submit_job(request).await;
        // A read error explains a refusal better than the refusal itself.
        sender.await?.with_context(|| format!("reading {}", data.display()))?;
        let response = response
            .map_err(|status| anyhow::anyhow!("{}", status_text(&status)))
            .with_context(|| format!("the coordinator refused {}", data.display()))?
            .into_inner();
        let job_id = response.job_id;
        eprintln!(
            "{} job {}: {} records{}, {} distinct contexts, {} shards",
            if response.existing { "existing" } else { "submitted" },
            shown(&job_id),
            response.records,
            if encoded_from_text { format!(" ({ENCODED_FROM_TEXT})") } else { String::new() },
            response.distinct_items,
            response.shards
        );
        println!("{}", shown(&job_id));
        if !(args.wait || args.output.is_some()) {
            return Ok(());
        }
        let reconnect = args.coordinator.reconnect();
        let mut progress = Progress::new(response.records);
        let last = follow(&mut client, &job_id, reconnect, progress.heartbeat(), |s| progress.show(s)).await?;
        progress.finish();
        // Whatever decoded is written, even when some records failed.
        if let Some(output) = &args.output {
            let lines = fetch_results(&mut client, &job_id, 0, Some(output), ResultFormat::Ids, reconnect).await?;
            eprintln!("wrote {lines} predictions to {}", output.display());
        }
        if args.score {
            print_job_scores(&last, args.json);
        }
        check_final(&last)
    })
}

/// How often a job's progress is printed when stderr is not a terminal (CI logs).
const PROGRESS_LINE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// A job's progress on stderr: a bar on a terminal; elsewhere a line every few seconds, so a
/// log shows the job moving (or not).
enum Progress {
    Bar(indicatif::ProgressBar),
    Lines { last: Option<std::time::Instant> },
}

impl Progress {
    fn new(records: u64) -> Self {
        use std::io::IsTerminal;
        if !std::io::stderr().is_terminal() {
            return Self::Lines { last: None };
        }
        Self::Bar(
            indicatif::ProgressBar::new(records).with_style(
                indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} records {msg} eta {eta}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            ),
        )
    }

    /// Lines repeat the last status when nothing changes for a while.
    fn heartbeat(&self) -> Option<std::time::Duration> {
        matches!(self, Self::Lines { .. }).then_some(PROGRESS_LINE_EVERY)
    }

    fn show(&mut self, s: &v1::JobStatus) {
        match self {
            Self::Bar(bar) => {
                bar.set_position(s.records_done);
                let mut message = format!("{:.0} tokens/s", s.tokens_per_s);
                if !s.stall.is_empty() {
                    message.push_str(&format!("  stalled: {}", super::client::shown(&s.stall)));
                }
                bar.set_message(message);
            }
            Self::Lines { last } => {
                let due = last.is_none_or(|t| t.elapsed() >= PROGRESS_LINE_EVERY);
                if due || lorabeam_proto::job_state_is_final(s.state) {
                    eprintln!("{}", super::client::status_line(s));
                    *last = Some(std::time::Instant::now());
                }
            }
        }
    }

    fn finish(&self) {
        if let Self::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

/// The bytes to send: the file as it is when it holds ids; its records encoded to ids when it
/// is text (checked here, with `file:line` errors, before anything is sent).
async fn open_data(path: &Path) -> anyhow::Result<(Box<dyn AsyncRead + Unpin + Send>, bool)> {
    if path.is_dir() {
        anyhow::bail!("{} is a directory, not a JSONL file", path.display());
    }
    let form = detect_file_form(path).with_context(|| format!("cannot read {}", path.display()))?;
    if form == Some(JsonlForm::Text) {
        let records = read_text_records(path, EncodeOptions::E2E)?;
        return Ok((Box::new(std::io::Cursor::new(ids_jsonl(&records)?)), true));
    }
    let file = tokio::fs::File::open(path).await.with_context(|| format!("cannot read {}", path.display()))?;
    Ok((Box::new(file), false))
}

/// The scores a completed job carries, as `lorabeam score` prints them.
fn print_job_scores(status: &v1::JobStatus, json: bool) {
    match &status.scores {
        Some(scores) => print_scores(&E2eScores::from(scores), json),
        None if !status.scores_error.is_empty() => {
            eprintln!("job {} was not scored: {}", shown(&status.job_id), shown(&status.scores_error))
        }
        None => eprintln!("job {} has no scores", shown(&status.job_id)),
    }
}
