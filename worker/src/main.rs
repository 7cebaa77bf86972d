//! `lorabeam-worker`: holds one LoRA GPT-2 model and decodes the shards queued for its model id.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use lorabeam_proto::connect::{read_secret, BearerToken, ClientTls};
use lorabeam_storage::{Location, ObjectCache};
use lorabeam_worker::fleet::{self, Decoder, FleetConfig, ModelBudget};
use lorabeam_worker::model::Gpt2;
use lorabeam_worker::{load_model, ModelArgs};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum EngineKind {
    /// The model, decoding with beam search.
    Model,
    /// No model: predicts each context's first eval_len tokens at once. Only for measuring the
    /// queue, gRPC and output path without the model's cost.
    Echo,
}

/// A count flag that refuses 0 with clap's message, rather than clamping it.
fn at_least_one() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
}

/// A size in MiB: a finite number above 0 and below 2^40 MiB (refused, not clamped).
fn positive_mib(value: &str) -> Result<f64, String> {
    let mib: f64 = value.parse().map_err(|e| format!("{value} is not a number of MiB: {e}"))?;
    if !(mib.is_finite() && mib > 0.0 && mib < (1u64 << 40) as f64) {
        return Err(format!("{value} MiB is not a size: give a number above 0 (and below 2^40)"));
    }
    Ok(mib)
}

#[derive(Debug, Parser)]
// A flag given twice takes its last value, so wrappers can override what they were given.
#[command(args_override_self = true)]
#[command(name = "lorabeam-worker", version, about = "lorabeam's worker: decodes queued shards of one model")]
struct Args {
    /// Redis holding the queue, e.g. redis://:password@redis:6379/0.
    #[arg(long, env = "LORABEAM_REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// The coordinator's gRPC URL; several of one deployment, comma separated, are tried in
    /// order at every (re)connect, so the worker carries on through another when one dies.
    #[arg(long, env = "LORABEAM_COORDINATOR", default_value = "http://127.0.0.1:50051")]
    coordinator: String,
    /// The model id this worker serves: jobs name it to reach it.
    #[arg(long, env = "LORABEAM_MODEL_ID")]
    model_id: String,
    /// Prefix of every Redis key (as the coordinator's).
    #[arg(long, env = "LORABEAM_KEY_PREFIX", default_value = "lorabeam")]
    key_prefix: String,
    /// This worker's name in the consumer group; defaults to host name and process id.
    #[arg(long, env = "LORABEAM_WORKER_NAME")]
    worker_name: Option<String>,
    /// Seconds a shard's lease lasts without renewal before another worker takes it over.
    #[arg(long, env = "LORABEAM_LEASE_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    lease_secs: u64,
    /// Seconds between the worker's heartbeats in Redis (what `lorabeam workers` lists); a
    /// worker whose heartbeats stop drops out of the list after three of them.
    #[arg(long, env = "LORABEAM_HEARTBEAT_SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    heartbeat_secs: u64,
    /// Seconds after SIGTERM to finish in-flight shards before releasing them.
    #[arg(long, env = "LORABEAM_GRACE_SECS", default_value_t = 120)]
    grace_secs: u64,
    /// Beam rows decoded together (the continuous batch's budget). Default: 320 on the CPU (its
    /// measured throughput plateau), not capped on CUDA (the KV budget bounds the batch).
    #[arg(long = "max_rows", env = "LORABEAM_MAX_ROWS", value_parser = at_least_one())]
    max_rows: Option<usize>,
    /// KV cache budget in MiB for the running batch (0: no limit). Items wait while it is full;
    /// an item that could never fit fails with the reason instead of the worker running out
    /// of memory. Default: none on the CPU, 70% of the device's free memory on CUDA.
    #[arg(long, env = "LORABEAM_MAX_KV_MIB")]
    max_kv_mib: Option<usize>,
    /// Times an item that broke the engine is tried alone before it is reported failed.
    #[arg(long, env = "LORABEAM_ITEM_RETRIES", default_value_t = 2, value_parser = at_least_one())]
    item_retries: usize,
    /// A shard handed out more often than this (its workers kept dying) has its items failed.
    #[arg(long, env = "LORABEAM_MAX_DELIVERIES", default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    max_deliveries: u64,
    /// Items claimed ahead of the batch. Small spreads a job's shards over more workers; large
    /// keeps a big batch full when items finish quickly.
    #[arg(long, env = "LORABEAM_PREFETCH_ITEMS", default_value_t = 32, value_parser = at_least_one())]
    prefetch_items: usize,
    /// Most shards held at once (claimed and not yet confirmed by the coordinator).
    #[arg(long, env = "LORABEAM_MAX_SHARDS", default_value_t = 16, value_parser = at_least_one())]
    max_shards: usize,
    /// Largest gRPC message accepted, in bytes.
    #[arg(long, env = "LORABEAM_MAX_MESSAGE_BYTES", default_value_t = 16 << 20)]
    max_message_bytes: usize,
    /// File holding this worker's bearer token (the coordinator's worker token).
    #[arg(long, env = "LORABEAM_TOKEN_FILE")]
    token_file: Option<std::path::PathBuf>,
    /// The bearer token itself, when not in a file.
    #[arg(long, env = "LORABEAM_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// PEM CA to trust for an `https://` coordinator.
    #[arg(long, env = "LORABEAM_TLS_CA")]
    tls_ca: Option<std::path::PathBuf>,
    /// PEM client certificate for mutual TLS.
    #[arg(long, env = "LORABEAM_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "LORABEAM_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// PEM CA to trust for a `rediss://` Redis signed by a private CA.
    #[arg(long, env = "LORABEAM_REDIS_CA")]
    redis_ca: Option<std::path::PathBuf>,
    /// File holding the Redis password (trailing whitespace trimmed), put into --redis-url in
    /// place of any password there: a Secret mounted as a file instead of an environment variable.
    #[arg(long, env = "LORABEAM_REDIS_PASSWORD_FILE")]
    redis_password_file: Option<std::path::PathBuf>,
    /// HTTP address for Prometheus `/metrics` and `/healthz`. The default, loopback on a port
    /// picked free (printed and logged at start), lets several workers share a host; a
    /// deployment scraped from elsewhere sets it (the chart and image set `0.0.0.0:9091`).
    #[arg(long, env = "LORABEAM_METRICS_LISTEN", default_value = "127.0.0.1:0")]
    metrics_listen: std::net::SocketAddr,
    /// Directory of the adapters this worker serves on its base, found by the name a job gives:
    /// `NAME/` holding a PEFT adapter (adapter_config.json), or `NAME.pt`, a loralib LoRA-only
    /// checkpoint (its alpha is --lora_alpha). Each is loaded on first use. Not given: a job
    /// that names an adapter fails here, naming it. A prefix in object storage
    /// (s3://BUCKET/adapters/, gs://, az://; credentials from the provider's usual environment)
    /// works too: each adapter is fetched into --adapter-cache-dir, again when its objects'
    /// ETags change, and a job decodes with the version its first shard found.
    #[arg(long, env = "LORABEAM_ADAPTER_DIR")]
    adapter_dir: Option<String>,
    /// With --adapter-dir in object storage: the local folder adapters are fetched into.
    /// Default: lorabeam-adapter-cache-<worker name> in the temporary directory.
    #[arg(long, env = "LORABEAM_ADAPTER_CACHE_DIR")]
    adapter_cache_dir: Option<std::path::PathBuf>,
    /// MiB of fetched adapter files kept on disk; the least recently used go first.
    #[arg(long, env = "LORABEAM_ADAPTER_CACHE_MIB", default_value_t = 4096.0, value_parser = positive_mib)]
    adapter_cache_mib: f64,
    /// Follow links under --adapter-dir that lead out of it. Off by default: an adapter name
    /// comes from a client, and must reach only files the operator put in the folder (links
    /// that stay inside, such as a Kubernetes volume's `..data`, always work).
    #[arg(long, env = "LORABEAM_ADAPTER_DIR_FOLLOW_LINKS", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    adapter_dir_follow_links: bool,
    /// MiB (fractions allowed) that the adapters prepared for the base may hold together; to
    /// make room, the least recently used adapter that no queued or running item uses is
    /// evicted. An adapter larger than this fails its jobs.
    #[arg(long, env = "LORABEAM_MAX_ADAPTER_MIB", default_value_t = 2048.0, value_parser = positive_mib)]
    max_adapter_mib: f64,
    /// Take claimed shards of adapters already held before ones that would load another, so
    /// a sweep does not thrash the cache (false: first come, first served).
    #[arg(long, env = "LORABEAM_PREFER_HELD_ADAPTERS", default_value_t = true, action = clap::ArgAction::Set)]
    prefer_held_adapters: bool,
    /// What decodes: the model, or `echo` to measure the plumbing alone.
    #[arg(long, env = "LORABEAM_ENGINE", value_enum, default_value_t = EngineKind::Model)]
    engine: EngineKind,
    #[command(flatten)]
    model: ModelArgs,
}

/// The adapter flags, checked: a directory that is not one is refused at start, not at the
/// first job.
fn adapter_config(args: &Args, worker_name: &str) -> anyhow::Result<fleet::AdapterConfig> {
    let source = match args.adapter_dir.as_deref().map(Location::parse).transpose()? {
        None => fleet::AdapterSource::None,
        Some(Location::Local(dir)) => {
            if !dir.is_dir() {
                anyhow::bail!("--adapter-dir {} is not a directory", dir.display());
            }
            fleet::AdapterSource::Dir(dir)
        }
        Some(Location::Remote(prefix)) => {
            let cache_dir = args.adapter_cache_dir.clone().unwrap_or_else(|| {
                std::env::temp_dir().join(format!("lorabeam-adapter-cache-{}", sanitized(worker_name)))
            });
            let cache = ObjectCache::new(cache_dir, (args.adapter_cache_mib * (1 << 20) as f64) as u64);
            fleet::AdapterSource::Remote(Arc::new(fleet::RemoteAdapters::new(prefix, cache)))
        }
    };
    Ok(fleet::AdapterConfig {
        source,
        max_bytes: (args.max_adapter_mib * (1 << 20) as f64) as usize,
        loralib_alpha: args.model.lora_alpha,
        prefer_held: args.prefer_held_adapters,
        follow_links: args.adapter_dir_follow_links,
    })
}

/// A worker name as one component of a folder name.
fn sanitized(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' })
        .take(100)
        .collect()
}

/// A worker serving adapters holds a bare base: one whose checkpoint's LoRA was merged at load
/// would decode every adapter on top of that fine-tune, a wrong model that looks right.
fn check_bare_base(adapters: &fleet::AdapterConfig, model: &Gpt2, lora_dim: Option<usize>) -> anyhow::Result<()> {
    let (Some(dir), Some((tensor, path))) = (adapters.source.shown(), model.merged_lora()) else { return Ok(()) };
    anyhow::bail!(
        "--adapter-dir {} serves adapters on a bare base, but {} carries LoRA tensors (`{tensor}`) that --lora_dim \
         {} merged into the model: every adapter would decode on top of that fine-tune. Give the pretrained model \
         as --base_checkpoint (without --init_checkpoint), or pass --lora_dim 0 to leave the checkpoint's LoRA \
         tensors out",
        dir,
        path.display(),
        lora_dim.unwrap_or_default()
    )
}

fn consumer_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "worker".into());
    format!("{}-{}", host.trim(), std::process::id())
}

fn main() -> std::process::ExitCode {
    // Before the runtime's threads and any libtorch call: may re-execute this binary with
    // glibc's and libgomp's settings in its environment.
    let tuning = lorabeam_worker::process::tune_process();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => return lorabeam_proto::error_text::exit_code(Some(vec![format!("starting the runtime: {err}")])),
    };
    let result = runtime.block_on(run(tuning));
    lorabeam_proto::error_text::exit_code(
        result.err().map(|err| err.chain().map(|e| e.to_string()).collect::<Vec<_>>()),
    )
}

async fn run(tuning: lorabeam_worker::process::Tuning) -> anyhow::Result<()> {
    let args: Args = lorabeam_proto::cli_flags::parse();
    let _telemetry = lorabeam_proto::telemetry::init("lorabeam-worker", "info")?;
    let metrics = tokio::net::TcpListener::bind(args.metrics_listen)
        .await
        .with_context(|| lorabeam_proto::connect::bind_failed("--metrics-listen", args.metrics_listen))?;
    let metrics_bound = metrics.local_addr()?;
    println!("lorabeam-worker metrics on {metrics_bound}");
    tracing::info!(%metrics_bound, "serving /metrics and /healthz (--metrics-listen)");
    let registry = lorabeam_worker::fleet::metrics::METRICS.registry.clone();
    tokio::spawn(lorabeam_proto::metrics_http::serve_metrics(metrics, registry, Default::default()));
    let consumer = args.worker_name.clone().unwrap_or_else(consumer_name);
    let adapters = adapter_config(&args, &consumer)?;
    let decoder = match args.engine {
        EngineKind::Echo => Decoder::Echo,
        EngineKind::Model => {
            let files = args.model.object_files(|line| tracing::info!("{line}"));
            let spec = args.model.resolved_spec(&files).await.context("fetching the model's files")?;
            let model = tokio::task::spawn_blocking(move || load_model(&spec)).await?.context("loading the model")?;
            check_bare_base(&adapters, &model, args.model.lora_dim)?;
            let batch = lorabeam_worker::generation::batch_budget(&model, args.max_rows, args.max_kv_mib);
            tracing::info!(
                budget = %batch.how,
                attention = %model.attention(),
                threads = tch::get_num_threads(),
                process = %tuning,
                "running batch"
            );
            let budget = ModelBudget {
                max_rows: batch.budget.max_rows,
                kv_budget_bytes: batch.budget.kv_bytes,
                item_retries: args.item_retries,
            };
            Decoder::Model { model: Box::new(model), budget }
        }
    };
    let config = FleetConfig {
        redis_url: lorabeam_proto::connect::redis_url_with_password(
            &args.redis_url,
            args.redis_password_file.as_deref(),
        )?,
        coordinator: args.coordinator,
        model_id: args.model_id,
        key_prefix: args.key_prefix,
        consumer,
        lease: Duration::from_secs(args.lease_secs),
        heartbeat: Duration::from_secs(args.heartbeat_secs),
        grace: Duration::from_secs(args.grace_secs),
        prefetch_items: args.prefetch_items,
        max_shards: args.max_shards,
        max_deliveries: args.max_deliveries,
        max_message_bytes: args.max_message_bytes,
        tls: ClientTls { ca: args.tls_ca, cert: args.tls_cert, key: args.tls_key },
        token: BearerToken::new(read_secret(args.token_file.as_deref(), args.token.as_deref())?)?,
        redis_ca: args.redis_ca,
        adapters,
    };
    fleet::run(config, decoder, lorabeam_proto::shutdown_signal()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// The flags, with both spellings added, pass clap's own consistency checks.
    #[test]
    fn the_command_line_is_consistent_with_both_spellings() {
        lorabeam_proto::cli_flags::argparse_style(super::Args::command()).debug_assert();
    }
}
