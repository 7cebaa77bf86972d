//! Talking to a coordinator: the connection every client subcommand shares, and how a job's
//! status is shown.

use std::time::Duration;

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use lorabeam_proto::connect::{read_secret, BearerToken, ClientTls, ConnectError};
use lorabeam_proto::job_state_name;
use lorabeam_proto::v1::{JobServiceClient, JobState, JobStatus, Scores};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use super::rpc::Retry;

#[derive(Debug, Clone, Args)]
pub struct CoordinatorArgs {
    /// The coordinator's gRPC URL (`https://` for TLS; `host:port` means `http://host:port`).
    /// Several coordinators of one deployment, comma separated, are tried in order at every
    /// (re)connect: the first that answers serves.
    #[arg(long, env = "LORABEAM_COORDINATOR", default_value = "http://127.0.0.1:50051")]
    pub coordinator: String,
    /// File holding the client bearer token, when the coordinator requires one.
    #[arg(long, env = "LORABEAM_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// The client bearer token itself, when not in a file.
    #[arg(long, env = "LORABEAM_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM CA to trust for an `https://` coordinator.
    #[arg(long, env = "LORABEAM_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate for mutual TLS.
    #[arg(long, env = "LORABEAM_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "LORABEAM_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// A JobService client that sends the bearer token, and the caller's trace context, on every call.
pub type Client = JobServiceClient<InterceptedService<Channel, ClientCalls>>;

/// What every call carries: the bearer token, and the W3C context in `$TRACEPARENT` (as
/// otel-cli and CI tracers set it), so the job and every later call join the caller's trace.
#[derive(Debug, Clone)]
pub struct ClientCalls {
    token: BearerToken,
    traceparent: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
}

impl tonic::service::Interceptor for ClientCalls {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let mut request = self.token.call(request)?;
        if let Some(value) = &self.traceparent {
            request.metadata_mut().insert(lorabeam_proto::telemetry::TRACEPARENT, value.clone());
        }
        Ok(request)
    }
}

/// Largest gRPC message the client accepts.
const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// The coordinator of a command that follows a job (`submit`, `sweep`, `watch`, `results`):
/// how to reach it, and how long to keep trying when it cannot be reached.
#[derive(Debug, Clone, Args)]
pub struct FollowingArgs {
    #[command(flatten)]
    pub coordinator: CoordinatorArgs,
    /// Seconds to keep retrying a coordinator that cannot be reached, at start as after a
    /// restart while following, before giving up; 0 gives up at the first failure.
    #[arg(long, env = "LORABEAM_RECONNECT_SECS", default_value_t = 300)]
    pub reconnect_secs: u64,
}

impl FollowingArgs {
    pub fn reconnect(&self) -> Duration {
        Duration::from_secs(self.reconnect_secs)
    }

    /// Dials the coordinator, retrying one that cannot be reached (not yet started, restarting)
    /// for --reconnect-secs; a bad address, TLS setting or token fails at once.
    pub async fn connect(&self) -> anyhow::Result<Client> {
        let mut retry = Retry::new(self.reconnect());
        loop {
            match self.coordinator.connect().await {
                Ok(client) => {
                    retry.succeeded();
                    return Ok(client);
                }
                Err(err) if is_unreachable(&err) => {
                    let status = tonic::Status::unavailable(lorabeam_proto::error_text::chain_text(
                        err.chain().map(ToString::to_string),
                    ));
                    retry.failed("connecting to the coordinator", &status).await?;
                }
                Err(err) => return Err(err),
            }
        }
    }
}

/// Whether a failed dial may work later: the coordinator did not answer.
fn is_unreachable(err: &anyhow::Error) -> bool {
    matches!(err.downcast_ref::<ConnectError>(), Some(ConnectError::Unreachable { .. }))
}

impl CoordinatorArgs {
    pub async fn connect(&self) -> anyhow::Result<Client> {
        let tls = ClientTls { ca: self.tls_ca.clone(), cert: self.tls_cert.clone(), key: self.tls_key.clone() };
        let channel = lorabeam_proto::connect::channel(&self.coordinator, &tls, Duration::from_secs(10)).await?;
        let token = BearerToken::new(read_secret(self.token_file.as_deref(), self.token.as_deref())?)?;
        let traceparent = match std::env::var("TRACEPARENT") {
            Ok(value) => Some(value.parse().with_context(|| format!("TRACEPARENT `{value}` is not ASCII"))?),
            Err(_) => None,
        };
        Ok(JobServiceClient::with_interceptor(channel, ClientCalls { token, traceparent })
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }
}

/// Runs a client subcommand (or run's object-storage reads) on a fresh runtime.
pub fn block_on<T, F: std::future::Future<Output = anyhow::Result<T>>>(future: F) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(future)
}

/// A string from the server as a terminal may show it: control characters (ANSI escapes,
/// carriage returns, newlines) escaped.
pub fn shown(s: &str) -> std::borrow::Cow<'_, str> {
    lorabeam_core::quote::escape_controls(s, false)
}

/// One line about a job, as `lorabeam jobs` and `lorabeam watch` print it.
pub fn status_line(s: &JobStatus) -> String {
    let mut line = format!(
        "{}  {:<24} {:<10} {}/{} records  {}/{} shards  {:.0} tokens/s",
        shown(&s.job_id),
        job_state_name(s.state),
        shown(&s.model_id),
        s.records_done,
        s.records,
        s.shards_done,
        s.shards,
        s.tokens_per_s
    );
    if !s.adapter.is_empty() {
        line.push_str(&format!("  adapter {}", shown(&s.adapter)));
    }
    if !s.failed_ids.is_empty() {
        line.push_str(&format!("  {} failed", s.failed_ids.len()));
    }
    if !s.error.is_empty() {
        line.push_str(&format!("  ({})", shown(&s.error)));
    }
    if !s.stall.is_empty() {
        line.push_str(&format!("  stalled: {}", shown(&s.stall)));
    }
    if let Some(scores) = &s.scores {
        line.push_str(&format!("  {}", scores_summary(scores)));
    }
    if !s.scores_error.is_empty() {
        line.push_str(&format!("  (not scored: {})", shown(&s.scores_error)));
    }
    line
}

/// A job's five scores on one line, as measure_scores.py names them.
pub fn scores_summary(s: &Scores) -> String {
    if !s.task_report_json.is_empty() {
        // A webnlg or dart job: the paper's columns of its report.
        return match serde_json::from_str::<serde_json::Value>(&s.task_report_json) {
            Ok(report) => {
                let cells: Vec<String> =
                    super::task_table::paper_columns(&report).into_iter().map(|(h, c)| format!("{h} {c}")).collect();
                format!("{}: {}", report["task"].as_str().unwrap_or_default(), cells.join("  "))
            }
            Err(e) => format!("a report that is not JSON ({e})"),
        };
    }
    let meteor = s.meteor.map_or_else(|| "n/a".to_string(), |m| format!("{m:.4}"));
    format!("BLEU {:.4}  NIST {:.4}  METEOR {meteor}  ROUGE_L {:.4}  CIDEr {:.4}", s.bleu, s.nist, s.rouge_l, s.cider)
}

/// A final state other than `completed` is an error for scripts (exit status 1).
pub fn check_final(status: &JobStatus) -> anyhow::Result<()> {
    match JobState::try_from(status.state) {
        Ok(JobState::Completed) => Ok(()),
        Ok(JobState::CompletedWithFailures) => {
            let ids: Vec<String> = status.failed_ids.iter().take(20).map(u64::to_string).collect();
            anyhow::bail!(
                "job {} completed with {} failed record(s), missing from the output (ids: {}{}): {}",
                shown(&status.job_id),
                status.failed_ids.len(),
                ids.join(", "),
                if status.failed_ids.len() > 20 { ", ..." } else { "" },
                shown(&status.error)
            )
        }
        _ => anyhow::bail!(
            "job {} ended {}: {}",
            shown(&status.job_id),
            job_state_name(status.state),
            shown(&status.error)
        ),
    }
}
