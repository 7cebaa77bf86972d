//! SubmitJob's intake: read the spec and the records, check both, plan, shard and store —
//! all or nothing.

use std::path::Path;

use lorabeam_proto::queue::{encode_plan, StoredJobSpec};
use lorabeam_proto::v1::{JobSpec, SubmitItem, SubmitJobRequest};
use lorabeam_proto::{DecodeParams, ModelLimits};
use tokio_stream::{Stream, StreamExt};

use crate::error::{CoordinatorError, Result};
use crate::plan::{plan_items, shard_items, FirstStep};
use crate::store::NewJob;
use crate::validation::{parse_records, RecordLimits};

/// GPT-2's limits, used for models no worker has registered yet (every GPT-2 size shares them).
pub const GPT2_LIMITS: ModelLimits = ModelLimits { vocab_size: 50257, n_positions: 1024 };

/// Intake settings: the service's limits, each refused with its own error.
#[derive(Debug, Clone, Copy)]
pub struct IntakeLimits {
    pub max_job_bytes: usize,
    pub default_shard_size: usize,
    pub max_lines: usize,
    pub max_line_bytes: usize,
    pub max_context_tokens: usize,
    pub max_eval_len: usize,
    pub max_beam: usize,
    /// Running jobs one client (peer address) may have at once.
    pub max_running_jobs_per_client: usize,
}

impl IntakeLimits {
    /// Generous defaults: they stop accidents, not users.
    pub fn with_defaults(default_shard_size: usize) -> Self {
        Self {
            max_job_bytes: 1 << 30,
            default_shard_size,
            max_lines: 10_000_000,
            max_line_bytes: 1 << 20,
            max_context_tokens: 100_000,
            max_eval_len: 1024,
            max_beam: 64,
            max_running_jobs_per_client: 16,
        }
    }
}

/// Reads a SubmitJob stream: the spec first, then the records in chunks.
pub async fn read_submission(
    mut stream: impl Stream<Item = std::result::Result<SubmitJobRequest, tonic::Status>> + Unpin,
    limits: IntakeLimits,
) -> Result<(JobSpec, Vec<u8>)> {
    let first = stream.next().await.transpose().map_err(CoordinatorError::Stream)?;
    let spec = match first.and_then(|m| m.item) {
        Some(SubmitItem::Spec(spec)) => spec,
        _ => return Err(CoordinatorError::InvalidSpec("the first SubmitJob message must be a JobSpec".into())),
    };
    check_spec(&spec)?;
    let mut data = Vec::new();
    while let Some(message) = stream.next().await {
        match message.map_err(CoordinatorError::Stream)?.item {
            Some(SubmitItem::Chunk(chunk)) => {
                if data.len() + chunk.jsonl.len() > limits.max_job_bytes {
                    return Err(CoordinatorError::LimitExceeded {
                        limit: "job_bytes",
                        detail: format!(
                            "the job's data is over this coordinator's limit of {} bytes",
                            limits.max_job_bytes
                        ),
                    });
                }
                data.extend_from_slice(&chunk.jsonl);
            }
            Some(SubmitItem::Spec(_)) => {
                return Err(CoordinatorError::InvalidSpec("only the first SubmitJob message may be a JobSpec".into()))
            }
            None => return Err(CoordinatorError::InvalidSpec("a SubmitJob message carries nothing".into())),
        }
    }
    Ok((spec, data))
}

/// Model ids become Redis key parts and file names: keep them plain.
fn check_spec(spec: &JobSpec) -> Result<()> {
    let id = &spec.model_id;
    let plain = id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if id.is_empty() || id.len() > 128 || !plain {
        return Err(CoordinatorError::InvalidSpec(format!(
            "model_id `{id}` must be 1 to 128 characters of letters, digits, `.`, `_` or `-`"
        )));
    }
    if spec.params.is_none() {
        return Err(CoordinatorError::InvalidSpec("params are missing".into()));
    }
    if spec.idempotency_key.len() > 256 {
        return Err(CoordinatorError::InvalidSpec("idempotency_key is longer than 256 bytes".into()));
    }
    Ok(())
}

/// Checks a submission against the model's limits and plans it. CPU-bound: run it off the
/// async threads.
pub fn plan_job(
    job_id: String,
    spec: &JobSpec,
    data: &[u8],
    model: ModelLimits,
    limits: IntakeLimits,
) -> Result<NewJob> {
    let params: DecodeParams = spec.params.as_ref().map(DecodeParams::from).unwrap_or_default();
    if params.eval_len > limits.max_eval_len {
        return Err(CoordinatorError::LimitExceeded {
            limit: "eval_len",
            detail: format!(
                "--eval_len {} is over this coordinator's limit of {}",
                params.eval_len, limits.max_eval_len
            ),
        });
    }
    if params.beam > limits.max_beam {
        return Err(CoordinatorError::LimitExceeded {
            limit: "beam",
            detail: format!("--beam {} is over this coordinator's limit of {}", params.beam, limits.max_beam),
        });
    }
    let params = params.validate(model)?;
    let name = if spec.name.is_empty() { "<submitted data>" } else { spec.name.as_str() };
    let record_limits = RecordLimits {
        vocab_size: model.vocab_size,
        max_lines: limits.max_lines,
        max_line_bytes: limits.max_line_bytes,
        max_context_tokens: limits.max_context_tokens,
    };
    let records = parse_records(Path::new(name), data, record_limits)?;
    let first_step =
        FirstStep { reference_batch_size: spec.reference_batch_size as usize, exact: spec.exact_first_step };
    let plan = plan_items(&records, &params, first_step);
    let shard_size = if spec.shard_size == 0 { limits.default_shard_size } else { spec.shard_size as usize };
    let shards = shard_items(&job_id, &plan, &params, shard_size);
    Ok(NewJob {
        spec: StoredJobSpec {
            model_id: spec.model_id.clone(),
            name: spec.name.clone(),
            params: (*params).clone(),
            shard_size,
            reference_batch_size: spec.reference_batch_size as usize,
            exact_first_step: spec.exact_first_step,
            idempotency_key: spec.idempotency_key.clone(),
        },
        job_id,
        records: records.len(),
        plan: encode_plan(&plan.index_of_record),
        shards,
        client: String::new(),
        job_traceparent: None,
        shard_traceparents: Vec::new(),
    })
}

/// A fresh job id: short, unique, safe in keys and file names.
pub fn new_job_id() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("job-{}", &id[..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use lorabeam_proto::v1;

    fn spec(model_id: &str) -> JobSpec {
        JobSpec {
            model_id: model_id.into(),
            params: Some(v1::DecodeParams::from(&DecodeParams { eval_len: 8, seq_len: 16, ..Default::default() })),
            ..Default::default()
        }
    }

    fn limits() -> IntakeLimits {
        IntakeLimits::with_defaults(2)
    }

    #[test]
    fn model_ids_stay_plain() {
        assert!(check_spec(&spec("e2e-md_v1.2")).is_ok());
        for bad in ["", "a:b", "a/b", "a b"] {
            assert!(matches!(check_spec(&spec(bad)), Err(CoordinatorError::InvalidSpec(_))), "{bad}");
        }
    }

    #[test]
    fn a_job_is_planned_into_shards_of_distinct_items() {
        let data = b"{\"context\": [1, 2]}\n{\"context\": [1, 2]}\n{\"context\": [3]}\n{\"context\": [4]}\n";
        let job = plan_job("job-x".into(), &spec("m"), data, GPT2_LIMITS, limits()).expect("valid");
        assert_eq!((job.records, job.shards.len()), (4, 2), "3 distinct items in shards of 2");
        assert_eq!(job.shards[0].items.len(), 2);
    }

    #[test]
    fn bad_lines_and_bad_params_are_refused() {
        let data = b"{\"context\": [1]}\n{\"context\": [99999]}\n";
        let err = plan_job("j".into(), &spec("m"), data, GPT2_LIMITS, limits()).err().expect("bad line");
        assert!(err.to_string().contains("<submitted data>:2: field `context`"), "{err}");
        let mut beam0 = spec("m");
        beam0.params.as_mut().expect("params").beam = 0;
        let err = plan_job("j".into(), &beam0, b"{\"context\": [1]}\n", GPT2_LIMITS, limits()).err().expect("beam 0");
        assert!(matches!(err, CoordinatorError::InvalidParams(_)));
    }
}
