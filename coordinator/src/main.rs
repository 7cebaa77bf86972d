//! `lorabeam-coordinator`: accepts jobs over gRPC, queues their shards in Redis, takes the
//! workers' results and writes each job's ordered JSONL.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use lorabeam_coordinator::auth::Tokens;
use lorabeam_coordinator::intake::IntakeLimits;
use lorabeam_coordinator::output_store::OutputStore;
use lorabeam_coordinator::{Coordinator, CoordinatorConfig, ServeOptions, ServerTls};
use lorabeam_storage::Location;

#[derive(Debug, Parser)]
// A flag given twice takes its last value, so wrappers can override what they were given.
#[command(args_override_self = true)]
#[command(name = "lorabeam-coordinator", version, about = "lorabeam's coordinator: jobs in, ordered JSONL out")]
struct Args {
    /// gRPC address to listen on (port 0 picks a free one; the bound address is logged). The
    /// default serves this machine only: give `0.0.0.0:50051` to serve the network, with tokens
    /// (--client-token-file, --worker-token-file), as the Helm chart does.
    #[arg(long, env = "LORABEAM_LISTEN", default_value = "127.0.0.1:50051")]
    listen: SocketAddr,
    /// Redis holding the queue and job state, e.g. redis://:password@redis:6379/0.
    #[arg(long, env = "LORABEAM_REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// Where the jobs' ordered outputs go, `<job id>.jsonl` (with `<job id>.failures.jsonl` and,
    /// in object storage, `<job id>.scores.json`): a folder, or a prefix in object storage
    /// (s3://BUCKET/PREFIX, gs://, az://; credentials from the provider's usual environment),
    /// each object uploaded whole (multipart) so a reader never sees half a file.
    #[arg(long, env = "LORABEAM_OUTPUT_DIR", default_value = "lorabeam-output")]
    output_dir: String,
    /// With --output-dir in object storage: the local folder outputs are written to before
    /// they are uploaded, and kept in (until the job's retention ends) when an upload fails.
    #[arg(long, env = "LORABEAM_OUTPUT_SPOOL_DIR", default_value = "lorabeam-output-spool")]
    output_spool_dir: PathBuf,
    /// Prefix of every Redis key, so deployments can share a Redis.
    #[arg(long, env = "LORABEAM_KEY_PREFIX", default_value = "lorabeam")]
    key_prefix: String,
    /// Seconds a finished job (state, results, output file) is kept; a model id that no worker
    /// has served for as long is forgotten too, so its jobs are refused instead of waiting.
    #[arg(long, env = "LORABEAM_RETENTION_SECS", default_value_t = 7 * 24 * 3600, value_parser = clap::value_parser!(u64).range(1..))]
    retention_secs: u64,
    #[command(flatten)]
    intake: IntakeLimits,
    /// Largest gRPC message accepted, in bytes.
    #[arg(long, env = "LORABEAM_MAX_MESSAGE_BYTES", default_value_t = 16 << 20, value_parser = lorabeam_coordinator::intake::at_least_one())]
    max_message_bytes: usize,
    /// File holding the clients' bearer token (with --worker-token-file, turns authentication on).
    #[arg(long, env = "LORABEAM_CLIENT_TOKEN_FILE")]
    client_token_file: Option<PathBuf>,
    /// The clients' bearer token itself, when not in a file.
    #[arg(long, env = "LORABEAM_CLIENT_TOKEN", hide_env_values = true)]
    client_token: Option<String>,
    /// File holding the workers' bearer token.
    #[arg(long, env = "LORABEAM_WORKER_TOKEN_FILE")]
    worker_token_file: Option<PathBuf>,
    /// The workers' bearer token itself, when not in a file.
    #[arg(long, env = "LORABEAM_WORKER_TOKEN", hide_env_values = true)]
    worker_token: Option<String>,
    /// PEM certificate (chain) to serve gRPC over TLS.
    #[arg(long, env = "LORABEAM_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "LORABEAM_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// PEM CA that client certificates must chain to (mutual TLS).
    #[arg(long, env = "LORABEAM_TLS_CLIENT_CA", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// PEM CA to trust for a `rediss://` Redis signed by a private CA.
    #[arg(long, env = "LORABEAM_REDIS_CA")]
    redis_ca: Option<PathBuf>,
    /// File holding the Redis password (trailing whitespace trimmed), put into --redis-url in
    /// place of any password there: a Secret mounted as a file instead of an environment variable.
    #[arg(long, env = "LORABEAM_REDIS_PASSWORD_FILE")]
    redis_password_file: Option<PathBuf>,
    /// The official meteor-1.5.jar for scored jobs (its data/paraphrase-en.gz beside it);
    /// default: where scripts/setup.sh installs it. Without it, scores say METEOR is unavailable.
    #[arg(long = "meteor-jar", env = "LORABEAM_METEOR_JAR")]
    meteor_jar: Option<PathBuf>,
    /// Score jobs without METEOR (it runs java with about 2 GB of heap per job).
    #[arg(long = "no-meteor", env = "LORABEAM_NO_METEOR")]
    no_meteor: bool,
    /// Seconds after SIGTERM for worker and client streams to close (workers and clients then
    /// reconnect to the next coordinator) before the coordinator exits regardless.
    #[arg(long, env = "LORABEAM_GRACE_SECS", default_value_t = 5.0, value_parser = grace_secs)]
    grace_secs: f64,
    /// Model ids this deployment serves even with no worker live (scale from zero), comma
    /// separated: jobs for them are accepted and wait for workers. Jobs for other ids are
    /// refused unless a worker has registered the id (the Helm chart lists its worker groups').
    #[arg(long, env = "LORABEAM_SERVE_MODEL_IDS", value_delimiter = ',')]
    serve_model_ids: Vec<String>,
    /// Most jobs this coordinator finalizes at once (writes the output of, and scores: a
    /// scoring runs METEOR's JVM with up to 2 GB of heap). Others wait their turn; jobs keep
    /// decoding meanwhile.
    #[arg(long, env = "LORABEAM_MAX_FINALIZING", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
    max_finalizing: u64,
    /// HTTP address for Prometheus `/metrics` and `/healthz` (not-ready, 503, while Redis does
    /// not answer). Loopback by default, as --listen; a deployment scraped from elsewhere sets
    /// it (the chart and image set `0.0.0.0:9090`).
    #[arg(long, env = "LORABEAM_METRICS_LISTEN", default_value = "127.0.0.1:9090")]
    metrics_listen: SocketAddr,
}

/// A grace in seconds: finite and not negative.
fn grace_secs(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= 0.0 => Ok(secs),
        _ => Err(format!("`{value}` is not a number of seconds (0 or more)")),
    }
}

fn main() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run());
    // Tasks still running (a blocking scorer, a connection past the grace) do not hold the
    // exit, so the ports are free for the next coordinator.
    runtime.shutdown_timeout(Duration::from_secs(1));
    lorabeam_proto::error_text::exit_code(
        result.err().map(|err| err.chain().map(|e| e.to_string()).collect::<Vec<_>>()),
    )
}

async fn run() -> anyhow::Result<()> {
    let args: Args = lorabeam_proto::cli_flags::parse();
    let _telemetry = lorabeam_proto::telemetry::init("lorabeam-coordinator", "info")?;
    let (output_dir, output_store) = match Location::parse(&args.output_dir).context("--output-dir")? {
        Location::Local(dir) => (dir, None),
        Location::Remote(prefix) => (args.output_spool_dir.clone(), Some(OutputStore::new(prefix))),
    };
    let config = CoordinatorConfig {
        redis_url: lorabeam_proto::connect::redis_url_with_password(
            &args.redis_url,
            args.redis_password_file.as_deref(),
        )?,
        key_prefix: args.key_prefix,
        output_dir,
        output_store,
        retention: Duration::from_secs(args.retention_secs),
        intake: args.intake,
        meteor: if args.no_meteor {
            Err(lorabeam_core::eval::MeteorUnavailable::new("left out (--no-meteor)"))
        } else {
            lorabeam_core::eval::MeteorRunner::locate(args.meteor_jar.as_deref())
        },
        redis_ca: args.redis_ca.clone(),
        serve_model_ids: lorabeam_coordinator::fleet::parse_model_ids(&args.serve_model_ids)
            .map_err(anyhow::Error::msg)?,
        max_finalizing: args.max_finalizing as usize,
    };
    let secret = |file: &Option<PathBuf>, value: &Option<String>| {
        lorabeam_proto::connect::read_secret(file.as_deref(), value.as_deref())
    };
    let tokens = Tokens::new(
        secret(&args.client_token_file, &args.client_token)?,
        secret(&args.worker_token_file, &args.worker_token)?,
    )
    .map_err(|e| anyhow::anyhow!("authentication: {e}"))?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            Some(ServerTls { cert: cert.clone(), key: key.clone(), client_ca: args.tls_client_ca.clone() })
        }
        _ => None,
    };
    let grace = Duration::from_secs_f64(args.grace_secs);
    let options = ServeOptions { max_message_bytes: args.max_message_bytes, tokens, tls, grace };
    let coordinator = Coordinator::connect(&config).await.context("connecting to redis")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| lorabeam_proto::connect::bind_failed("--listen", args.listen))?;
    let bound = listener.local_addr()?;
    let metrics = tokio::net::TcpListener::bind(args.metrics_listen)
        .await
        .with_context(|| lorabeam_proto::connect::bind_failed("--metrics-listen", args.metrics_listen))?;
    let metrics_bound = metrics.local_addr()?;
    // Tests and scripts read these lines to find ports picked with :0.
    println!("lorabeam-coordinator listening on {bound}");
    println!("lorabeam-coordinator metrics on {metrics_bound}");
    tokio::spawn(lorabeam_proto::metrics_http::serve_metrics(
        metrics,
        lorabeam_coordinator::metrics::METRICS.registry.clone(),
        coordinator.side_door(),
    ));
    let output = config.output_store.as_ref().map_or(config.output_dir.display().to_string(), |s| s.url().to_string());
    tracing::info!(%bound, %output, "serving");
    if !bound.ip().is_loopback() && !options.tokens.enabled() {
        tracing::warn!(
            %bound,
            "SERVING THE NETWORK WITHOUT AUTHENTICATION: anyone who reaches {bound} can submit, read and cancel \
             jobs and report results as a worker; set --client-token-file and --worker-token-file, or listen on \
             127.0.0.1"
        );
    }
    tracing::info!(
        auth = options.tokens.enabled(),
        tls = options.tls.is_some(),
        mtls = args.tls_client_ca.is_some(),
        "security"
    );
    coordinator.serve(listener, options, lorabeam_proto::shutdown_signal()).await?;
    tracing::info!("stopped");
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
