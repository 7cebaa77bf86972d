//! Following a job on the coordinator: its statuses until it ends, and its predictions in id
//! order. Both ride out a coordinator restart: they retry with backoff and go on from where
//! they were (the next status; the prediction after the last one held).

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use lorabeam_core::predictions::{format_prediction, PredictionFile};
use lorabeam_core::text::{cut_at_end, decode};
use lorabeam_proto::job_state_is_final;
use lorabeam_proto::v1::{JobStatus, StreamResultsRequest, WatchJobRequest};
use tonic::{Code, Status};

use super::client::{Client, FollowingArgs};
use super::rpc::Retry;

/// After a failure worth retrying: dials again, so that with several coordinators listed
/// (`--coordinator a,b`) a client whose coordinator died goes on through another. A dial that
/// fails keeps the old client: the next call fails too, and is retried.
async fn redial(client: &mut Client, coordinator: &FollowingArgs) {
    if let Ok(fresh) = coordinator.coordinator.connect().await {
        *client = fresh;
    }
}

/// Calls `on_event` with every status of a job until it is final; returns the final one. With
/// `heartbeat`, a job that does not change has its last status given again that often, so a
/// log that is not a terminal still shows the job is followed.
pub async fn follow(
    client: &mut Client,
    job_id: &str,
    coordinator: &FollowingArgs,
    heartbeat: Option<Duration>,
    mut on_event: impl FnMut(&JobStatus),
) -> anyhow::Result<JobStatus> {
    let what = format!("watching {job_id}");
    let mut retry = Retry::new(coordinator.reconnect());
    let mut last: Option<JobStatus> = None;
    loop {
        let mut events = match client.watch_job(WatchJobRequest { job_id: job_id.to_string() }).await {
            Ok(response) => response.into_inner(),
            Err(status) => {
                retry.failed(&what, &status).await?;
                redial(client, coordinator).await;
                continue;
            }
        };
        let ended = loop {
            let next = match heartbeat {
                Some(every) => match tokio::time::timeout(every, events.message()).await {
                    Ok(next) => next,
                    Err(_) => {
                        if let Some(status) = &last {
                            on_event(status);
                        }
                        continue;
                    }
                },
                None => events.message().await,
            };
            match next {
                Ok(Some(event)) => {
                    retry.succeeded();
                    let Some(status) = event.status else { continue };
                    on_event(&status);
                    if job_state_is_final(status.state) {
                        return Ok(status);
                    }
                    last = Some(status);
                }
                Ok(None) => break Status::unavailable("the coordinator ended the watch before the job ended"),
                Err(status) => break status,
            }
        };
        retry.failed(&what, &ended).await?;
        redial(client, coordinator).await;
    }
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

/// Where fetched predictions go: a file renamed into place at the end, or standard output.
enum Sink {
    File(PredictionFile),
    Stdout(std::io::Stdout),
}

impl Sink {
    fn push(&mut self, line: &str) -> anyhow::Result<()> {
        match self {
            Sink::File(file) => file.push_line(line)?,
            Sink::Stdout(out) => {
                if let Err(err) = out.lock().write_all(line.as_bytes()) {
                    super::term::stdout_failed(&err);
                }
            }
        }
        Ok(())
    }

    fn finish(self) -> anyhow::Result<()> {
        match self {
            Sink::File(file) => file.finish()?,
            Sink::Stdout(out) => {
                if let Err(err) = out.lock().flush() {
                    super::term::stdout_failed(&err);
                }
            }
        }
        Ok(())
    }
}

/// Streams a job's predictions in id order from `offset` to `output` (atomically) or standard
/// output; returns how many. When the job ended without every prediction (cancelled, failed),
/// every stored one is still given, `output` is still written, and then the error says why.
pub async fn fetch_results(
    client: &mut Client,
    job_id: &str,
    offset: u64,
    output: Option<&Path>,
    format: ResultFormat,
    coordinator: &FollowingArgs,
) -> anyhow::Result<usize> {
    let what = format!("fetching {job_id}");
    let mut sink = match output {
        Some(path) => Sink::File(PredictionFile::create(path)?),
        None => Sink::Stdout(std::io::stdout()),
    };
    let mut retry = Retry::new(coordinator.reconnect());
    let (mut next, mut count, mut line) = (offset, 0, String::new());
    loop {
        let request = StreamResultsRequest { job_id: job_id.to_string(), offset: next };
        let mut stream = match client.stream_results(request).await {
            Ok(response) => response.into_inner(),
            Err(status) => {
                retry.failed(&what, &status).await?;
                redial(client, coordinator).await;
                continue;
            }
        };
        let ended = loop {
            match stream.message().await {
                Ok(Some(prediction)) => {
                    retry.succeeded();
                    let id = usize::try_from(prediction.id).context("a prediction id past this machine's usize")?;
                    result_line(&mut line, id, &prediction.predict, format)?;
                    sink.push(&line)?;
                    count += 1;
                    next = prediction.id + 1;
                }
                Ok(None) => {
                    sink.finish()?;
                    return Ok(count);
                }
                Err(status) => break status,
            }
        };
        if ended.code() == Code::FailedPrecondition {
            // The job ended short of some records: what it holds is all there will be.
            sink.finish()?;
            return Err(super::rpc::rpc_error(format!("{what} (gave {count} prediction(s))"), &ended));
        }
        retry.failed(&what, &ended).await?;
        redial(client, coordinator).await;
    }
}
