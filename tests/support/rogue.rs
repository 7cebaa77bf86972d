//! A holder of the worker token that is no real worker: it takes leases with `redis-cli` as
//! any consumer it likes and sends raw reports, so tests can check what the coordinator takes.

use lorabeam_proto::queue::{CONSUMER_METADATA, CONSUMER_SECRET_METADATA};
use lorabeam_proto::v1::{ShardConfirmed, WorkerReport, WorkerServiceClient};
use tonic::metadata::BinaryMetadataValue;

use super::cluster::Redis;

/// A shard lease taken straight from the model's stream.
#[derive(Debug, Clone)]
pub struct Lease {
    pub entry_id: String,
    pub shard: serde_json::Value,
}

impl Lease {
    pub fn job_id(&self) -> String {
        self.shard["job_id"].as_str().unwrap_or_default().to_string()
    }

    pub fn shard_id(&self) -> String {
        self.shard["shard_id"].as_str().unwrap_or_default().to_string()
    }

    /// The item ids the shard holds.
    pub fn items(&self) -> Vec<u32> {
        let items = self.shard["items"].as_array().cloned().unwrap_or_default();
        items.iter().filter_map(|i| i["item"].as_u64()).map(|i| i as u32).collect()
    }
}

/// The secret a rogue registers for `consumer` (it holds Redis credentials, as a worker does).
fn secret_of(consumer: &str) -> String {
    format!("rogue-secret-of-{consumer}")
}

/// Registers `consumer` in Redis as a starting worker does, so its Report streams are taken.
pub fn register_consumer(redis: &Redis, consumer: &str) {
    let key = format!("lorabeam:consumer:{consumer}:secret");
    assert_eq!(redis.cli(&["SET", &key, &secret_of(consumer)]), "OK");
}

/// Claims the next new shard of `model_id` for `consumer`, as a worker's XREADGROUP does (the
/// consumer is registered first).
pub fn take_lease(redis: &Redis, model_id: &str, consumer: &str) -> Lease {
    register_consumer(redis, consumer);
    let queue = format!("lorabeam:queue:{model_id}");
    let out = redis.cli(&["XREADGROUP", "GROUP", "workers", consumer, "COUNT", "1", "STREAMS", &queue, ">"]);
    let lines: Vec<&str> = out.lines().collect();
    let entry_id = lines.get(1).unwrap_or_else(|| panic!("no shard to lease: {out}")).to_string();
    let body = lines.iter().position(|l| *l == "shard").and_then(|i| lines.get(i + 1)).expect("a shard field");
    Lease { entry_id, shard: serde_json::from_str(body).expect("shard JSON") }
}

/// Marks a lease expired at once, so a real worker's next claim takes it.
pub fn expire_lease(redis: &Redis, model_id: &str, consumer: &str, entry_id: &str) {
    let queue = format!("lorabeam:queue:{model_id}");
    redis.cli(&["XCLAIM", &queue, "workers", consumer, "0", entry_id, "IDLE", "999999999", "JUSTID"]);
}

/// A Report stream request declaring `consumer`, with the secret [`register_consumer`] gives it.
pub fn as_consumer<T>(message: T, consumer: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert_bin(CONSUMER_METADATA, BinaryMetadataValue::from_bytes(consumer.as_bytes()));
    let secret = secret_of(consumer);
    request.metadata_mut().insert_bin(CONSUMER_SECRET_METADATA, BinaryMetadataValue::from_bytes(secret.as_bytes()));
    request
}

/// Sends `reports` as `consumer` on one stream; the confirmations, or the error ending it.
pub async fn report_as(
    url: &str,
    consumer: &str,
    reports: Vec<WorkerReport>,
) -> Result<Vec<ShardConfirmed>, tonic::Status> {
    let mut client = WorkerServiceClient::connect(url.to_string())
        .await
        .expect("connect")
        .max_encoding_message_size(64 << 20)
        .max_decoding_message_size(64 << 20);
    let mut replies = client.report(as_consumer(tokio_stream::iter(reports), consumer)).await?.into_inner();
    let mut confirmed = Vec::new();
    while let Some(c) = replies.message().await? {
        confirmed.push(c);
    }
    Ok(confirmed)
}
