//! Raw SubmitJob messages, for tests that send what the CLI never would, and a coordinator
//! with its Redis and no worker, the set-up those tests share.

use std::path::Path;

use lorabeam_core::DecodeParams;
use lorabeam_proto::submission::DataDigest;
use lorabeam_proto::v1::{self, JobServiceClient, JobSpec, RecordChunk, SubmitItem, SubmitJobRequest};

use super::cluster::{Coordinator, Redis};

pub const GOOD: &str = "{\"context\": [1, 2, 3], \"completion\": [4]}\n";

pub fn spec(params: DecodeParams) -> SubmitJobRequest {
    let spec = JobSpec {
        model_id: "tiny".into(),
        params: Some(v1::DecodeParams::try_from(&params).expect("fits")),
        ..Default::default()
    };
    SubmitJobRequest { item: Some(SubmitItem::Spec(spec)) }
}

pub fn chunk(bytes: &[u8]) -> SubmitJobRequest {
    SubmitJobRequest { item: Some(SubmitItem::Chunk(RecordChunk { jsonl: bytes.to_vec() })) }
}

/// The DataEnd of `bytes` sent whole: what a well-formed submission ends with.
pub fn end_of(bytes: &[u8]) -> SubmitJobRequest {
    let mut digest = DataDigest::default();
    digest.update(bytes);
    SubmitJobRequest { item: Some(SubmitItem::End(digest.end())) }
}

pub fn small() -> DecodeParams {
    DecodeParams { beam: 2, eval_len: 8, seq_len: 64, ..Default::default() }
}

/// A job the coordinator accepted (no worker serves it, so it stays running).
pub async fn submit_good(client: &mut JobServiceClient<tonic::transport::Channel>) -> String {
    let messages = vec![spec(small()), chunk(GOOD.as_bytes()), end_of(GOOD.as_bytes())];
    client.submit_job(tokio_stream::iter(messages)).await.expect("a good job is accepted").into_inner().job_id
}

/// The value of one counter line (`name{labels}`) on a metrics page, 0 when absent.
pub fn counter(metrics: &str, series: &str) -> f64 {
    metrics.lines().find_map(|line| line.strip_prefix(series).and_then(|rest| rest.trim().parse().ok())).unwrap_or(0.0)
}

/// A coordinator (with `extra` flags) over its own redis-server, no worker, and a runtime for
/// raw gRPC calls. Fields drop in order: the coordinator stops before its Redis.
pub struct LoneCoordinator {
    pub runtime: tokio::runtime::Runtime,
    pub coordinator: Coordinator,
    pub redis: Redis,
    pub dir: tempfile::TempDir,
}

impl LoneCoordinator {
    pub fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let redis = Redis::start(dir.path());
        let coordinator = Coordinator::start(&redis, dir.path(), None, extra);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        Self { runtime, coordinator, redis, dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}
