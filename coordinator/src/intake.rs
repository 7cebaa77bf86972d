//! SubmitJob's intake: read the spec and the records, check both, plan, shard and store —
//! all or nothing.

use std::path::Path;
use std::time::Duration;

use clap::builder::RangedU64ValueParser;
use lorabeam_core::quote::{prefix, quote};
use lorabeam_core::records::parse_records;
use lorabeam_core::text::E2eReferences;
use lorabeam_core::{check_adapter_name, plan_items, DecodeParams, FirstStep, ModelLimits, Record, RecordLimits};
use lorabeam_proto::queue::{encode_plan, StoredJobSpec};
use lorabeam_proto::submission::DataDigest;
use lorabeam_proto::v1::{DataEnd, JobSpec, SubmitItem, SubmitJobRequest};
use tokio_stream::{Stream, StreamExt};

use crate::admission::Held;
use crate::error::{stream_error, CoordinatorError, Result};
use crate::sharding::{fleet_shard_size, shard_items};
use crate::store::NewJob;

/// Intake settings: the service's limits, each refused with its own error. They are the
/// coordinator's flags; [`Default`] gives the same values as the flags' defaults.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct IntakeLimits {
    /// Largest job accepted, in bytes of JSONL.
    #[arg(long, env = "LORABEAM_MAX_JOB_BYTES", default_value_t = defaults::MAX_JOB_BYTES, value_parser = at_least_one())]
    pub max_job_bytes: usize,
    /// Distinct contexts per shard when the job does not say. Not given: sized to the fleet,
    /// so that a job spreads over the live workers of its model, one shard each (at least 8
    /// and at most 100 contexts per shard).
    #[arg(long = "shard-size", env = "LORABEAM_SHARD_SIZE", value_parser = at_least_one())]
    pub default_shard_size: Option<usize>,
    /// Most lines in one job.
    #[arg(long, env = "LORABEAM_MAX_LINES", default_value_t = defaults::MAX_LINES, value_parser = at_least_one())]
    pub max_lines: usize,
    /// Longest line accepted, in bytes.
    #[arg(long, env = "LORABEAM_MAX_LINE_BYTES", default_value_t = defaults::MAX_LINE_BYTES, value_parser = at_least_one())]
    pub max_line_bytes: usize,
    /// Most context tokens on one line (before truncation to seq_len - eval_len).
    #[arg(long, env = "LORABEAM_MAX_CONTEXT_TOKENS", default_value_t = defaults::MAX_CONTEXT_TOKENS, value_parser = at_least_one())]
    pub max_context_tokens: usize,
    /// Largest eval_len a job may ask for.
    #[arg(long, env = "LORABEAM_MAX_EVAL_LEN", default_value_t = defaults::MAX_EVAL_LEN, value_parser = at_least_one())]
    pub max_eval_len: usize,
    /// Largest beam a job may ask for.
    #[arg(long, env = "LORABEAM_MAX_BEAM", default_value_t = defaults::MAX_BEAM, value_parser = at_least_one())]
    pub max_beam: usize,
    /// Running jobs one client (peer address) may have at once.
    #[arg(long = "max-jobs-per-client", env = "LORABEAM_MAX_JOBS_PER_CLIENT", default_value_t = defaults::MAX_JOBS_PER_CLIENT, value_parser = at_least_one())]
    pub max_running_jobs_per_client: usize,
    /// Largest references a scored job keeps (its completions, as JSON), in bytes: scoring's
    /// time and memory grow with them, and they stay in Redis until the job ends. The whole
    /// E2E, WebNLG and DART test sets fit the default.
    #[arg(long, env = "LORABEAM_MAX_REFERENCE_BYTES", default_value_t = defaults::MAX_REFERENCE_BYTES, value_parser = at_least_one())]
    pub max_reference_bytes: usize,
    /// Longest job name (JobSpec.name), in bytes.
    #[arg(long, env = "LORABEAM_MAX_NAME_BYTES", default_value_t = defaults::MAX_NAME_BYTES, value_parser = at_least_one())]
    pub max_name_bytes: usize,
    /// Longest idempotency key, in bytes.
    #[arg(long, env = "LORABEAM_MAX_IDEMPOTENCY_KEY_BYTES", default_value_t = defaults::MAX_IDEMPOTENCY_KEY_BYTES, value_parser = at_least_one())]
    pub max_idempotency_key_bytes: usize,
    /// Most extra end-of-sequence token ids a job may give (each shard carries them all).
    #[arg(long, env = "LORABEAM_MAX_EOS_IDS", default_value_t = defaults::MAX_EOS_IDS, value_parser = at_least_one())]
    pub max_eos_ids: usize,
    /// Longest failure reason kept from a worker, in bytes; longer ones are cut, with a marker.
    #[arg(long, env = "LORABEAM_MAX_REASON_BYTES", default_value_t = defaults::MAX_REASON_BYTES, value_parser = at_least_one())]
    pub max_reason_bytes: usize,
    /// Bytes of JSONL that all unfinished SubmitJob streams together may hold in memory; a
    /// chunk that would go past it refuses its submission (so does a job larger than it).
    #[arg(long, env = "LORABEAM_MAX_SUBMISSION_BYTES_IN_FLIGHT", default_value_t = defaults::MAX_SUBMISSION_BYTES_IN_FLIGHT, value_parser = at_least_one())]
    pub max_submission_bytes_in_flight: usize,
    /// SubmitJob streams one client (peer address) may have open at once.
    #[arg(long, env = "LORABEAM_MAX_SUBMISSIONS_PER_CLIENT", default_value_t = defaults::MAX_SUBMISSIONS_PER_CLIENT, value_parser = at_least_one())]
    pub max_submissions_per_client: usize,
    /// Seconds a SubmitJob stream may send nothing before it is refused (and what it sent is
    /// freed).
    #[arg(long, env = "LORABEAM_SUBMISSION_IDLE_SECS", default_value_t = defaults::SUBMISSION_IDLE_SECS, value_parser = clap::value_parser!(u64).range(1..))]
    pub submission_idle_secs: u64,
}

/// The limits' defaults, named once for the flags and for [`IntakeLimits::default`]: generous,
/// they stop accidents, not users.
pub mod defaults {
    pub const MAX_JOB_BYTES: usize = 1 << 30;
    pub const MAX_LINES: usize = 10_000_000;
    pub const MAX_LINE_BYTES: usize = 1 << 20;
    pub const MAX_CONTEXT_TOKENS: usize = 100_000;
    pub const MAX_EVAL_LEN: usize = 1024;
    pub const MAX_BEAM: usize = 64;
    pub const MAX_JOBS_PER_CLIENT: usize = 16;
    pub const MAX_NAME_BYTES: usize = 1024;
    pub const MAX_REFERENCE_BYTES: usize = 8 << 20;
    pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 256;
    pub const MAX_EOS_IDS: usize = 64;
    pub const MAX_REASON_BYTES: usize = 4096;
    pub const MAX_SUBMISSION_BYTES_IN_FLIGHT: usize = 2 << 30;
    pub const MAX_SUBMISSIONS_PER_CLIENT: usize = 8;
    pub const SUBMISSION_IDLE_SECS: u64 = 30;
}

/// A count flag that refuses 0 with clap's message instead of clamping it.
pub fn at_least_one() -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::<usize>::new().range(1..)
}

impl Default for IntakeLimits {
    fn default() -> Self {
        Self {
            max_job_bytes: defaults::MAX_JOB_BYTES,
            default_shard_size: None,
            max_lines: defaults::MAX_LINES,
            max_line_bytes: defaults::MAX_LINE_BYTES,
            max_context_tokens: defaults::MAX_CONTEXT_TOKENS,
            max_eval_len: defaults::MAX_EVAL_LEN,
            max_beam: defaults::MAX_BEAM,
            max_running_jobs_per_client: defaults::MAX_JOBS_PER_CLIENT,
            max_name_bytes: defaults::MAX_NAME_BYTES,
            max_reference_bytes: defaults::MAX_REFERENCE_BYTES,
            max_idempotency_key_bytes: defaults::MAX_IDEMPOTENCY_KEY_BYTES,
            max_eos_ids: defaults::MAX_EOS_IDS,
            max_reason_bytes: defaults::MAX_REASON_BYTES,
            max_submission_bytes_in_flight: defaults::MAX_SUBMISSION_BYTES_IN_FLIGHT,
            max_submissions_per_client: defaults::MAX_SUBMISSIONS_PER_CLIENT,
            submission_idle_secs: defaults::SUBMISSION_IDLE_SECS,
        }
    }
}

/// Reads a SubmitJob stream: the spec first, then the records in chunks, then their end. A
/// stream that ends without the end, or whose chunks do not add up to it, was cut short: it is
/// refused, so no job is ever made of part of its data. What it holds is reserved on `held`
/// (the in-flight budget), and a stream that sends nothing for the idle timeout is refused.
pub async fn read_submission(
    mut stream: impl Stream<Item = std::result::Result<SubmitJobRequest, tonic::Status>> + Unpin,
    limits: IntakeLimits,
    held: &mut Held,
) -> Result<(JobSpec, Vec<u8>)> {
    let first = next_message(&mut stream, &limits, 0).await?;
    let spec = match first.and_then(|m| m.item) {
        Some(SubmitItem::Spec(spec)) => spec,
        _ => return Err(CoordinatorError::InvalidSpec("the first SubmitJob message must be a JobSpec".into())),
    };
    check_spec(&spec, &limits)?;
    if !spec.data_url.is_empty() {
        return crate::object_data::finish_url_submission(spec, stream, &limits).await;
    }
    let mut data = Vec::new();
    let mut digest = DataDigest::default();
    while let Some(message) = next_message(&mut stream, &limits, data.len()).await? {
        match message.item {
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
                held.reserve(chunk.jsonl.len())?;
                digest.update(&chunk.jsonl);
                data.extend_from_slice(&chunk.jsonl);
            }
            Some(SubmitItem::End(end)) => return finish_submission(spec, data, digest, &end, stream, &limits).await,
            Some(SubmitItem::Spec(_)) => {
                return Err(CoordinatorError::InvalidSpec("only the first SubmitJob message may be a JobSpec".into()))
            }
            None => return Err(CoordinatorError::InvalidSpec("a SubmitJob message carries nothing".into())),
        }
    }
    Err(CoordinatorError::TruncatedSubmission(format!(
        "the stream ended after {} bytes without its DataEnd message: the data may be cut short, so nothing was queued",
        data.len()
    )))
}

/// The stream's next message, or `SubmissionIdle` when none comes within the idle timeout.
pub(crate) async fn next_message(
    stream: &mut (impl Stream<Item = std::result::Result<SubmitJobRequest, tonic::Status>> + Unpin),
    limits: &IntakeLimits,
    received: usize,
) -> Result<Option<SubmitJobRequest>> {
    let idle = Duration::from_secs(limits.submission_idle_secs);
    match tokio::time::timeout(idle, stream.next()).await {
        Ok(message) => message.transpose().map_err(stream_error),
        Err(_) => Err(CoordinatorError::SubmissionIdle(format!(
            "the SubmitJob stream sent nothing for {} s (--submission-idle-secs) after {received} bytes; nothing was queued",
            limits.submission_idle_secs
        ))),
    }
}

/// After the end: the data must be what the sender counted, and nothing may follow.
async fn finish_submission(
    spec: JobSpec,
    data: Vec<u8>,
    digest: DataDigest,
    end: &DataEnd,
    mut stream: impl Stream<Item = std::result::Result<SubmitJobRequest, tonic::Status>> + Unpin,
    limits: &IntakeLimits,
) -> Result<(JobSpec, Vec<u8>)> {
    if !digest.matches(end) {
        return Err(CoordinatorError::TruncatedSubmission(format!(
            "the chunks hold {} bytes, but the DataEnd message counts {} (or their checksum differs): nothing was queued",
            data.len(),
            end.bytes
        )));
    }
    if next_message(&mut stream, limits, data.len()).await?.is_some() {
        return Err(CoordinatorError::InvalidSpec("nothing may follow the DataEnd message".into()));
    }
    Ok((spec, data))
}

/// Model ids become Redis key parts and file names: keep them plain. The client's strings and
/// lists are bounded before anything is read or stored.
fn check_spec(spec: &JobSpec, limits: &IntakeLimits) -> Result<()> {
    let id = &spec.model_id;
    let plain = id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if id.is_empty() || id.len() > 128 || !plain {
        return Err(CoordinatorError::InvalidSpec(format!(
            "model_id {} must be 1 to 128 characters of letters, digits, `.`, `_` or `-`",
            quote(id)
        )));
    }
    let Some(params) = &spec.params else {
        return Err(CoordinatorError::InvalidSpec("params are missing".into()));
    };
    let over = |limit: &'static str, what: &str, size: usize, max: usize| CoordinatorError::LimitExceeded {
        limit,
        detail: format!("{what} is {size}, over this coordinator's limit of {max}"),
    };
    if spec.name.len() > limits.max_name_bytes {
        return Err(over("name_bytes", "the job's name in bytes", spec.name.len(), limits.max_name_bytes));
    }
    if spec.idempotency_key.len() > limits.max_idempotency_key_bytes {
        let (size, max) = (spec.idempotency_key.len(), limits.max_idempotency_key_bytes);
        return Err(over("idempotency_key_bytes", "idempotency_key in bytes", size, max));
    }
    if params.extra_eos_token_ids.len() > limits.max_eos_ids {
        let (size, max) = (params.extra_eos_token_ids.len(), limits.max_eos_ids);
        return Err(over("eos_ids", "the number of extra eos token ids", size, max));
    }
    // The name becomes a path under each worker's --adapter-dir: keep it one plain component.
    if !spec.adapter.is_empty() {
        check_adapter_name(&spec.adapter).map_err(|e| CoordinatorError::InvalidSpec(e.to_string()))?;
    }
    crate::task_scoring::check_task(spec)?;
    if !spec.data_url.is_empty() {
        crate::object_data::data_object(&spec.data_url)?;
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
    live_workers: usize,
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
    // The name heads every `name:line` error: only its prefix is shown.
    let name = if spec.name.is_empty() { "<submitted data>".to_string() } else { prefix(&spec.name) };
    let record_limits = RecordLimits {
        vocab_size: model.vocab_size,
        max_lines: limits.max_lines,
        max_line_bytes: limits.max_line_bytes,
        max_context_tokens: limits.max_context_tokens,
    };
    let records = parse_records(Path::new(&name), data, record_limits)?;
    let first_step =
        FirstStep { reference_batch_size: spec.reference_batch_size as usize, exact: spec.exact_first_step };
    let plan = plan_items(&records, &params, first_step);
    let references = match (spec.score, crate::task_scoring::check_task(spec)?) {
        (false, _) => None,
        (true, None) => Some(scoring_references(&records)?),
        (true, Some(task)) => Some(crate::task_scoring::task_references(task, &name, data, &records)?),
    };
    if let Some(json) = &references {
        check_reference_bytes(json, limits.max_reference_bytes)?;
    }
    let shard_size = match (spec.shard_size, limits.default_shard_size) {
        (0, Some(size)) => size,
        (0, None) => fleet_shard_size(plan.distinct.len(), live_workers),
        (size, _) => size as usize,
    };
    let shards = shard_items(&job_id, &plan, &params, shard_size, &spec.adapter)?;
    Ok(NewJob {
        spec: StoredJobSpec {
            model_id: spec.model_id.clone(),
            name: spec.name.clone(),
            params: (*params).clone(),
            shard_size,
            reference_batch_size: spec.reference_batch_size as usize,
            exact_first_step: spec.exact_first_step,
            idempotency_key: spec.idempotency_key.clone(),
            score: spec.score,
            data_fingerprint: crate::idempotency::data_fingerprint(data),
            adapter: spec.adapter.clone(),
            task: spec.task.clone(),
            ref_num: spec.ref_num,
            filter: spec.filter.clone(),
            // Set by the caller for data read from object storage.
            data_url: String::new(),
            data_etag: String::new(),
            data_bytes: 0,
        },
        job_id,
        records: records.len(),
        plan: encode_plan(&plan.index_of_record)
            .map_err(|detail| CoordinatorError::LimitExceeded { limit: "items", detail })?,
        shards,
        client: String::new(),
        job_traceparent: None,
        shard_traceparents: Vec::new(),
        references,
    })
}

/// What scoring needs from the records, kept with the job: a job that cannot be scored (a
/// completion that does not decode), or whose references are over the budget, is refused now
/// rather than failing (or costing minutes of scoring) at the end.
fn scoring_references(records: &[Record]) -> Result<String> {
    for record in records {
        if let Some(why) =
            lorabeam_core::text::unscorable_reference(record, lorabeam_core::text::PostProcess::default())
        {
            return Err(CoordinatorError::InvalidSpec(format!(
                "score: line {}: {why}, and e2e-metrics could not score the job; fix the line, or submit without --score",
                record.id + 1
            )));
        }
    }
    let references = E2eReferences::from_records(records)
        .map_err(|e| CoordinatorError::InvalidSpec(format!("score: the job's references: {e}")))?;
    serde_json::to_string(&references).map_err(|e| CoordinatorError::Internal(format!("references: {e}")))
}

/// Refuses references over the coordinator's budget (minutes of scoring, Redis memory).
fn check_reference_bytes(json: &str, max_bytes: usize) -> Result<()> {
    if json.len() > max_bytes {
        return Err(CoordinatorError::LimitExceeded {
            limit: "reference_bytes",
            detail: format!(
                "score: the job's references take {} bytes, over this coordinator's limit of {max_bytes} (--max-reference-bytes)",
                json.len()
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lorabeam_proto::v1;

    fn spec(model_id: &str) -> JobSpec {
        JobSpec {
            model_id: model_id.into(),
            params: Some(
                v1::DecodeParams::try_from(&DecodeParams { eval_len: 8, seq_len: 16, ..Default::default() })
                    .expect("fits"),
            ),
            ..Default::default()
        }
    }

    fn limits() -> IntakeLimits {
        IntakeLimits { default_shard_size: Some(2), ..Default::default() }
    }

    #[test]
    fn defaults_are_the_flags_defaults() {
        #[derive(clap::Parser)]
        struct Flags {
            #[command(flatten)]
            limits: IntakeLimits,
        }
        let parsed = <Flags as clap::Parser>::try_parse_from(["coordinator"]).expect("defaults parse");
        assert_eq!(format!("{:?}", parsed.limits), format!("{:?}", IntakeLimits::default()));
        let zero = <Flags as clap::Parser>::try_parse_from(["coordinator", "--shard-size", "0"]);
        let err = zero.err().expect("0 is refused, not clamped").to_string();
        assert!(err.contains("--shard-size") && err.contains("0 is not in 1.."), "{err}");
    }

    fn check_spec_default(spec: &JobSpec) -> Result<()> {
        check_spec(spec, &IntakeLimits::default())
    }

    #[test]
    fn model_ids_stay_plain() {
        assert!(check_spec_default(&spec("e2e-md_v1.2")).is_ok());
        for bad in ["", "a:b", "a/b", "a b"] {
            assert!(matches!(check_spec_default(&spec(bad)), Err(CoordinatorError::InvalidSpec(_))), "{bad}");
        }
    }

    #[test]
    fn adapter_names_stay_one_plain_path_component() {
        let named = |adapter: &str| JobSpec { adapter: adapter.into(), ..spec("m") };
        assert!(check_spec_default(&named("")).is_ok(), "no adapter: the bare base");
        assert!(check_spec_default(&named("step-2000.v2")).is_ok());
        for bad in ["../x", "a/b", ".hidden", "a..b", &"x".repeat(129)] {
            let err = check_spec_default(&named(bad)).expect_err(bad);
            assert!(matches!(err, CoordinatorError::InvalidSpec(_)), "{bad}: {err}");
            assert!(err.to_string().starts_with("invalid job spec: adapter `"), "{err}");
        }
    }

    #[test]
    fn a_jobs_adapter_is_kept_with_its_spec_and_every_shard() {
        let data = b"{\"context\": [1]}\n{\"context\": [2]}\n{\"context\": [3]}\n";
        let spec = JobSpec { adapter: "step-2000".into(), ..spec("m") };
        let job = plan_job("job-x".into(), &spec, data, ModelLimits::GPT2, limits(), 1).expect("valid");
        assert_eq!(job.spec.adapter, "step-2000");
        assert_eq!(job.shards.len(), 2);
        assert!(job.shards.iter().all(|s| s.adapter == "step-2000"), "{:?}", job.shards);
    }

    #[test]
    fn a_scored_jobs_references_over_the_budget_are_refused_with_their_size_and_the_limit() {
        let data = b"{\"context\": [1], \"completion\": [2, 3]}\n{\"context\": [4], \"completion\": [5]}\n";
        let spec = JobSpec { score: true, ..spec("m") };
        let scored = plan_job("j".into(), &spec, data, ModelLimits::GPT2, limits(), 1).expect("within the default");
        let size = scored.references.as_deref().map(str::len).expect("references kept");
        let tight = IntakeLimits { max_reference_bytes: size - 1, ..limits() };
        let err = plan_job("j".into(), &spec, data, ModelLimits::GPT2, tight, 1).err().expect("over the budget");
        let text = err.to_string();
        assert!(matches!(err, CoordinatorError::LimitExceeded { limit: "reference_bytes", .. }), "{text}");
        assert!(text.contains(&format!("take {size} bytes, over this coordinator's limit of {}", size - 1)), "{text}");
        assert!(text.contains("--max-reference-bytes"), "{text}");
        let exact = IntakeLimits { max_reference_bytes: size, ..limits() };
        assert!(plan_job("j".into(), &spec, data, ModelLimits::GPT2, exact, 1).is_ok(), "at the limit is taken");
    }

    #[test]
    fn a_scored_job_whose_references_e2e_metrics_would_misread_is_refused_naming_the_line() {
        let scored = JobSpec { score: true, ..spec("m") };
        // 50256 is the end of sequence; 198 is "\n" in GPT-2's vocabulary.
        for (line, why) in [
            ("{\"context\": [9]}", "has no completion"),
            ("{\"context\": [9], \"completion\": [50256]}", "empty once cut at the end of sequence"),
            ("{\"context\": [9], \"completion\": [5, 198, 6]}", "holds a line break"),
        ] {
            let data = format!("{{\"context\": [1], \"completion\": [2]}}\n{line}\n");
            let err = plan_job("j".into(), &scored, data.as_bytes(), ModelLimits::GPT2, limits(), 1).err().expect(why);
            let text = err.to_string();
            assert!(matches!(err, CoordinatorError::InvalidSpec(_)), "{text}");
            assert!(text.contains("score: line 2: ") && text.contains(why), "{text}");
            let unscored = plan_job("j".into(), &spec("m"), data.as_bytes(), ModelLimits::GPT2, limits(), 1);
            assert!(unscored.is_ok(), "without --score the line is fine: {line}");
        }
    }

    #[test]
    fn a_job_is_planned_into_shards_of_distinct_items() {
        let data = b"{\"context\": [1, 2]}\n{\"context\": [1, 2]}\n{\"context\": [3]}\n{\"context\": [4]}\n";
        let job = plan_job("job-x".into(), &spec("m"), data, ModelLimits::GPT2, limits(), 1).expect("valid");
        assert_eq!((job.records, job.shards.len()), (4, 2), "3 distinct items in shards of 2");
        assert_eq!(job.shards[0].items.len(), 2);
    }

    #[test]
    fn bad_lines_and_bad_params_are_refused() {
        let data = b"{\"context\": [1]}\n{\"context\": [99999]}\n";
        let err = plan_job("j".into(), &spec("m"), data, ModelLimits::GPT2, limits(), 1).err().expect("bad line");
        assert!(err.to_string().contains("<submitted data>:2: field `context`"), "{err}");
        let mut beam0 = spec("m");
        beam0.params.as_mut().expect("params").beam = 0;
        let err = plan_job("j".into(), &beam0, b"{\"context\": [1]}\n", ModelLimits::GPT2, limits(), 1)
            .err()
            .expect("beam 0");
        assert!(matches!(err, CoordinatorError::InvalidParams(_)));
    }
}
