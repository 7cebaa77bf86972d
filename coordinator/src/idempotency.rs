//! Idempotency keys: a resubmission with the key of an earlier job returns that job only when it
//! asks for the same work; otherwise it is refused, naming what differs, so a reused key never
//! hands back the output of other parameters as if it were this one's.

use lorabeam_core::DecodeParams;
use lorabeam_proto::queue::StoredJobSpec;
use lorabeam_proto::submission::DataDigest;
use lorabeam_proto::v1::JobSpec;

use crate::error::CoordinatorError;
use crate::object_data::SubmittedData;

/// The fingerprint of a job's data that its stored spec keeps: byte count and FNV-1a 64.
pub fn data_fingerprint(data: &[u8]) -> String {
    let mut digest = DataDigest::default();
    digest.update(data);
    let end = digest.end();
    format!("{}:{:016x}", end.bytes, end.fnv1a64)
}

/// What differs between the job a key made (`stored`) and a resubmission (`spec` with `data`),
/// one `field (was X, now Y)` each; empty when it asks for the same work. The name is a label,
/// not part of the work, and is not compared.
pub fn differences(
    stored: &StoredJobSpec,
    spec: &JobSpec,
    submitted: &SubmittedData,
    default_shard_size: Option<usize>,
) -> Vec<String> {
    let data = submitted.bytes.as_slice();
    let mut out = Vec::new();
    let mut differ = |field: &str, was: String, now: String| {
        if was != now {
            out.push(format!("{field} (was {was}, now {now})"));
        }
    };
    differ("model_id", stored.model_id.clone(), spec.model_id.clone());
    // Another adapter is other weights: other work, never the first job's output.
    differ("adapter", shown_adapter(&stored.adapter), shown_adapter(&spec.adapter));
    let params: DecodeParams = spec.params.as_ref().map(DecodeParams::from).unwrap_or_default();
    let (a, b) = (&stored.params, &params);
    differ("beam", a.beam.to_string(), b.beam.to_string());
    differ("eval_len", a.eval_len.to_string(), b.eval_len.to_string());
    differ("seq_len", a.seq_len.to_string(), b.seq_len.to_string());
    differ("min_length", a.min_length.to_string(), b.min_length.to_string());
    differ("length_penalty", a.length_penalty.to_string(), b.length_penalty.to_string());
    differ("no_repeat_ngram_size", a.no_repeat_ngram_size.to_string(), b.no_repeat_ngram_size.to_string());
    differ("repetition_penalty", a.repetition_penalty.to_string(), b.repetition_penalty.to_string());
    differ("eos_token_id", format!("{:?}", a.extra_eos_token_ids), format!("{:?}", b.extra_eos_token_ids));
    // A size the fleet chose (no size given, none set by flag) depends on the workers live at
    // each submission: the resubmission asks for the same work whatever it is now.
    let shard_size = if spec.shard_size == 0 { default_shard_size } else { Some(spec.shard_size as usize) };
    if let Some(shard_size) = shard_size {
        differ("shard_size", stored.shard_size.to_string(), shard_size.to_string());
    }
    differ("batch_size", stored.reference_batch_size.to_string(), spec.reference_batch_size.to_string());
    differ("exact_first_step", stored.exact_first_step.to_string(), spec.exact_first_step.to_string());
    differ("score", stored.score.to_string(), spec.score.to_string());
    differ("task", shown_task(&stored.task), shown_task(&spec.task));
    differ("ref_num", stored.ref_num.to_string(), spec.ref_num.to_string());
    differ("filter", stored.filter.clone(), spec.filter.clone());
    // Jobs stored before the fingerprint was kept have none: their data cannot be compared.
    if !stored.data_fingerprint.is_empty() {
        let now = data_fingerprint(data);
        if stored.data_fingerprint != now {
            out.push(format!("data (was {}, now {now} bytes:fnv1a64)", stored.data_fingerprint));
        }
    }
    // Data read from object storage: the object, and the version of it that was read.
    let shown = |url: &str| if url.is_empty() { "sent in the stream".to_string() } else { url.to_string() };
    if stored.data_url != spec.data_url {
        out.push(format!("data_url (was {}, now {})", shown(&stored.data_url), shown(&spec.data_url)));
    } else if let Some(object) = &submitted.object {
        if !stored.data_etag.is_empty() && stored.data_etag != object.etag {
            out.push(format!("data_url's object (was ETag {}, now {})", stored.data_etag, object.etag));
        }
    }
    out
}

/// A task as a difference names it: "" is e2e.
fn shown_task(task: &str) -> String {
    if task.is_empty() {
        "e2e".into()
    } else {
        task.into()
    }
}

/// An adapter as a difference names it: quoted, or `none` for the bare base.
fn shown_adapter(adapter: &str) -> String {
    if adapter.is_empty() {
        "none".into()
    } else {
        lorabeam_core::quote::quote(adapter)
    }
}

/// The refusal of a reused key, or `Ok` when the resubmission asks for the job's own work.
pub fn check_same_work(
    job_id: &str,
    stored: &StoredJobSpec,
    spec: &JobSpec,
    data: &SubmittedData,
    default_shard_size: Option<usize>,
) -> Result<(), CoordinatorError> {
    let differing = differences(stored, spec, data, default_shard_size);
    if differing.is_empty() {
        return Ok(());
    }
    Err(CoordinatorError::IdempotencyConflict {
        key: lorabeam_core::quote::quote(&spec.idempotency_key),
        job_id: job_id.to_string(),
        differing: differing.join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lorabeam_proto::v1;

    fn stored(data: &[u8]) -> StoredJobSpec {
        StoredJobSpec {
            model_id: "m".into(),
            name: "a.jsonl".into(),
            params: DecodeParams { beam: 10, eval_len: 64, ..Default::default() },
            shard_size: 8,
            reference_batch_size: 10,
            exact_first_step: false,
            idempotency_key: "k1".into(),
            score: false,
            data_fingerprint: data_fingerprint(data),
            adapter: String::new(),
            task: String::new(),
            ref_num: 0,
            filter: String::new(),
            data_url: String::new(),
            data_etag: String::new(),
            data_bytes: 0,
        }
    }

    fn sent(data: &[u8]) -> SubmittedData {
        SubmittedData { bytes: data.to_vec(), object: None }
    }

    fn spec(params: DecodeParams) -> JobSpec {
        JobSpec {
            model_id: "m".into(),
            name: "b.jsonl".into(),
            params: Some(v1::DecodeParams::try_from(&params).expect("fits")),
            shard_size: 0,
            idempotency_key: "k1".into(),
            reference_batch_size: 10,
            ..Default::default()
        }
    }

    #[test]
    fn the_same_work_under_another_name_is_the_same_job() {
        let data = b"{\"context\": [1]}\n";
        let same = spec(DecodeParams { beam: 10, eval_len: 64, ..Default::default() });
        assert_eq!(differences(&stored(data), &same, &sent(data), Some(8)), Vec::<String>::new());
    }

    #[test]
    fn each_differing_field_is_named() {
        let data = b"{\"context\": [1]}\n";
        let other = spec(DecodeParams { beam: 3, eval_len: 16, ..Default::default() });
        let found = differences(&stored(data), &other, &sent(b"{\"context\": [2]}\n"), Some(4));
        let fields: Vec<&str> = found.iter().filter_map(|d| d.split(' ').next()).collect();
        assert_eq!(fields, ["beam", "eval_len", "shard_size", "data"], "{found:?}");
        assert_eq!(found[0], "beam (was 10, now 3)");
        let err = check_same_work("job-1", &stored(data), &other, &sent(data), Some(8)).expect_err("refused");
        let text = err.to_string();
        assert!(text.contains("job-1") && text.contains("beam (was 10, now 3), eval_len (was 64, now 16)"), "{text}");
    }

    #[test]
    fn another_adapter_is_other_work() {
        let data = b"{\"context\": [1]}\n";
        let params = DecodeParams { beam: 10, eval_len: 64, ..Default::default() };
        let with = |adapter: &str| JobSpec { adapter: adapter.into(), ..spec(params.clone()) };
        assert_eq!(differences(&stored(data), &with("a"), &sent(data), Some(8)), ["adapter (was none, now `a`)"]);
        let stored_a = StoredJobSpec { adapter: "a".into(), ..stored(data) };
        assert_eq!(differences(&stored_a, &with("b"), &sent(data), Some(8)), ["adapter (was `a`, now `b`)"]);
        assert_eq!(differences(&stored_a, &with("a"), &sent(data), Some(8)), Vec::<String>::new());
    }

    #[test]
    fn another_object_or_another_version_of_it_is_other_work() {
        let data = b"{\"context\": [1]}\n";
        let params = DecodeParams { beam: 10, eval_len: 64, ..Default::default() };
        let url = "s3://bucket/e2e/test.jsonl";
        let stored_url =
            StoredJobSpec { data_url: url.into(), data_etag: "\"e1\"".into(), data_bytes: 17, ..stored(data) };
        let read = |etag: &str| SubmittedData {
            bytes: data.to_vec(),
            object: Some(lorabeam_storage::Meta { etag: etag.into(), size: 17 }),
        };
        let with = |data_url: &str| JobSpec { data_url: data_url.into(), ..spec(params.clone()) };
        assert_eq!(differences(&stored_url, &with(url), &read("\"e1\""), Some(8)), Vec::<String>::new());
        assert_eq!(
            differences(&stored_url, &with(url), &read("\"e2\""), Some(8)),
            ["data_url's object (was ETag \"e1\", now \"e2\")"]
        );
        assert_eq!(
            differences(&stored_url, &with(""), &sent(data), Some(8)),
            ["data_url (was s3://bucket/e2e/test.jsonl, now sent in the stream)"]
        );
    }
}
