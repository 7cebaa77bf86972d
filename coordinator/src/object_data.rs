//! A job's data read by the coordinator from object storage (JobSpec.data_url), so a large
//! test set goes from the bucket to the coordinator without passing through the client.

use std::path::Path;

use lorabeam_core::quote::quote;
use lorabeam_core::text::encode_text_jsonl;
use lorabeam_core::RecordLimits;
use lorabeam_storage::{Location, Meta, Remote};

use lorabeam_proto::v1::{JobSpec, SubmitItem, SubmitJobRequest};
use tokio_stream::Stream;

use crate::admission::Held;
use crate::error::{CoordinatorError, Result};
use crate::intake::IntakeLimits;

/// Longest data_url accepted, in bytes (S3 keys are at most 1024).
const MAX_URL_BYTES: usize = 2048;

/// The job's data as submitted: its bytes (ids-form JSONL), and the object they were read from.
#[derive(Debug, Default)]
pub struct SubmittedData {
    pub bytes: Vec<u8>,
    /// The ETag and size of the object read, for a job submitted with data_url.
    pub object: Option<Meta>,
}

/// The object a data_url names. Only object URLs: a client never makes the coordinator read a
/// file of its own machine (a path, `file://`).
pub fn data_object(url: &str) -> Result<Remote> {
    if url.len() > MAX_URL_BYTES {
        return Err(CoordinatorError::LimitExceeded {
            limit: "data_url_bytes",
            detail: format!("data_url is {} bytes, over the limit of {MAX_URL_BYTES}", url.len()),
        });
    }
    match Location::parse(url)? {
        Location::Remote(remote) => Ok(remote),
        Location::Local(_) => Err(CoordinatorError::InvalidSpec(format!(
            "data_url {} is not an object URL: the coordinator reads s3://, gs:// or az:// objects for clients, \
             never its own files (send a local file's contents in the stream)",
            quote(url)
        ))),
    }
}

/// Reads the job's data object whole, its bytes held against the in-flight budget like a
/// streamed job's, and encodes it when it is text (as `submit` does for a local file).
pub async fn read_data_object(url: &str, limits: &IntakeLimits, held: &mut Held) -> Result<SubmittedData> {
    let object = data_object(url)?;
    let max = limits.max_job_bytes as u64;
    // The size is known before the body is read: a job over the limits is refused unread.
    let listed = object.head().await?;
    if listed.size > max {
        return Err(CoordinatorError::LimitExceeded {
            limit: "job_bytes",
            detail: format!("{url} is {} bytes, over this coordinator's limit of {max}", listed.size),
        });
    }
    held.reserve(listed.size as usize)?;
    let (bytes, meta) = object.read(max).await?;
    if bytes.len() as u64 > listed.size {
        held.reserve(bytes.len() - listed.size as usize)?;
    }
    tracing::info!(data_url = %object.url(), bytes = meta.size, etag = %meta.etag, "read a job's data from object storage");
    let record_limits = RecordLimits {
        vocab_size: lorabeam_core::text::VOCAB_SIZE,
        max_lines: limits.max_lines,
        max_line_bytes: limits.max_line_bytes,
        max_context_tokens: limits.max_context_tokens,
    };
    let name = Path::new(object.url());
    let bytes = match encode_text_jsonl(name, &bytes, record_limits)? {
        Some(encoded) => encoded,
        None => bytes,
    };
    Ok(SubmittedData { bytes, object: Some(meta) })
}

/// A job whose data is an object (JobSpec.data_url): the stream ends with a DataEnd of 0
/// bytes, and nothing else; the coordinator reads the object itself.
pub(crate) async fn finish_url_submission(
    spec: JobSpec,
    mut stream: impl Stream<Item = std::result::Result<SubmitJobRequest, tonic::Status>> + Unpin,
    limits: &IntakeLimits,
) -> Result<(JobSpec, Vec<u8>)> {
    match crate::intake::next_message(&mut stream, limits, 0).await?.and_then(|m| m.item) {
        Some(SubmitItem::End(end)) if end.bytes == 0 => {}
        Some(SubmitItem::Chunk(_)) | Some(SubmitItem::End(_)) => {
            return Err(CoordinatorError::InvalidSpec(
                "a job with data_url carries no data in the stream: the coordinator reads the object".into(),
            ))
        }
        _ => {
            return Err(CoordinatorError::TruncatedSubmission(
                "the stream ended without its DataEnd message: nothing was queued".into(),
            ))
        }
    }
    if crate::intake::next_message(&mut stream, limits, 0).await?.is_some() {
        return Err(CoordinatorError::InvalidSpec("nothing may follow the DataEnd message".into()));
    }
    Ok((spec, Vec::new()))
}
