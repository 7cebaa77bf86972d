//! The coordinator process: its shared state, the gRPC server (JobService, WorkerService,
//! health, reflection) and the maintenance loop.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lorabeam_proto::job_state::JobPhase;
use lorabeam_proto::queue::Keys;
use lorabeam_proto::v1::{JobServiceServer, WorkerServiceServer, FILE_DESCRIPTOR_SET};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use crate::admission::Submissions;
use crate::auth::{Role, Tokens};
use crate::error::{CoordinatorError, Result};
use crate::events::JobEvents;
use crate::finalizer::Finalizer;
use crate::fleet::Fleet;
use crate::intake::IntakeLimits;
use crate::leases::Leases;
use crate::output_store::OutputStore;
use crate::oversize::OversizeAsLimit;
use crate::progress_watch::ProgressWatch;
use crate::results::Results;
use crate::scoring::Meteor;
use crate::shutdown::Drain;
use crate::store::JobStore;

/// Everything the coordinator's handlers share; cheap to clone.
#[derive(Clone)]
pub struct Coordinator {
    pub(crate) store: JobStore,
    pub(crate) results: Results,
    pub(crate) leases: Leases,
    pub(crate) submissions: Submissions,
    pub(crate) events: JobEvents,
    /// Where finished jobs' files are written (with `output_store`, the spool they are
    /// uploaded from).
    pub(crate) output_dir: PathBuf,
    pub(crate) output_store: Option<Arc<OutputStore>>,
    pub(crate) intake: IntakeLimits,
    pub(crate) meteor: Meteor,
    pub(crate) drain: Drain,
    pub(crate) fleet: Fleet,
    pub(crate) finalizer: Finalizer,
    /// Open jobs' progress across maintenance passes (this coordinator's view).
    pub(crate) progress: Arc<std::sync::Mutex<ProgressWatch>>,
    /// Redis's address (never its password), for the errors and the readiness that name it.
    pub(crate) redis_address: String,
}

/// How to run a coordinator.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    pub redis_url: String,
    pub key_prefix: String,
    /// The outputs' folder; with `output_store`, the local spool they are uploaded from.
    pub output_dir: PathBuf,
    /// `--output-dir` in object storage.
    pub output_store: Option<OutputStore>,
    pub retention: Duration,
    pub intake: IntakeLimits,
    /// METEOR for scored jobs: the runner, or why there is none.
    pub meteor: std::result::Result<lorabeam_core::eval::MeteorRunner, lorabeam_core::eval::MeteorUnavailable>,
    /// A CA for `rediss://` URLs signed by a private CA.
    pub redis_ca: Option<PathBuf>,
    /// Model ids taken without a live worker (`--serve-model-ids`): scale from zero.
    pub serve_model_ids: Vec<String>,
    /// Most jobs this coordinator finalizes (writes and scores) at once.
    pub max_finalizing: usize,
}

/// TLS for the gRPC port: the server's certificate and key, and a CA that client certificates
/// must chain to (mTLS) when given.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// How the gRPC port is served.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub max_message_bytes: usize,
    pub tokens: Tokens,
    pub tls: Option<ServerTls>,
    /// After the shutdown signal: how long streams have to close before the process stops
    /// waiting for them.
    pub grace: Duration,
}

fn read(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| CoordinatorError::Internal(format!("cannot read {}: {e}", path.display())))
}

/// How often running jobs are checked for completion and expired jobs swept.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(5);
/// How long `/healthz` waits for Redis's PONG before it reports not-ready.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

impl Coordinator {
    pub async fn connect(config: &CoordinatorConfig) -> Result<Self> {
        let client = lorabeam_proto::connect::redis_client(&config.redis_url, config.redis_ca.as_deref())
            .map_err(|e| CoordinatorError::Internal(e.to_string()))?;
        let redis_address = client.get_connection_info().addr().to_string();
        let store = JobStore::connect(client, Keys::new(&config.key_prefix), config.retention).await?;
        store.index_jobs().await?;
        std::fs::create_dir_all(&config.output_dir)
            .map_err(|source| lorabeam_core::WriteError { path: config.output_dir.clone(), source })?;
        if let Some(store) = &config.output_store {
            store.check_writable().await?;
        }
        Ok(Self {
            results: Results::new(store.clone()),
            leases: Leases::new(store.clone()),
            fleet: Fleet::new(store.clone(), &config.serve_model_ids),
            redis_address,
            submissions: Submissions::new(&config.intake),
            store,
            events: JobEvents::default(),
            output_dir: config.output_dir.clone(),
            output_store: config.output_store.clone().map(Arc::new),
            intake: config.intake,
            meteor: std::sync::Arc::new(config.meteor.clone()),
            drain: Drain::default(),
            finalizer: Finalizer::new(config.max_finalizing),
            progress: Arc::default(),
        })
    }

    /// Hands to the finalizer the running jobs whose every item has an outcome (their last
    /// result's finalization failed, or its coordinator died first) and the finalizing jobs
    /// (the claim takes only those whose finalizer's lease ran out), and forgets expired jobs
    /// and their outputs.
    pub async fn maintain(&self) -> Result<()> {
        let mut moving = Vec::new();
        for (job_id, phase) in self.store.open_jobs().await? {
            if phase == JobPhase::Finalizing {
                self.request_finalization(&job_id);
                continue;
            }
            match self.results.progress(&job_id).await? {
                (_, true) => self.request_finalization(&job_id),
                (done, false) => moving.push((job_id, done)),
            }
        }
        if let Ok(mut watch) = self.progress.lock() {
            let longest = watch.observe(std::time::Instant::now(), &moving);
            crate::metrics::METRICS.job_seconds_without_progress.set(longest.as_secs() as i64);
        }
        for job_id in self.store.sweep_expired().await? {
            let output = self.output_dir.join(format!("{job_id}.jsonl"));
            match std::fs::remove_file(&output) {
                Ok(()) => tracing::info!(%job_id, "retention over: output removed"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(%job_id, error = %e, "could not remove an expired output"),
            }
            self.results.forget(&job_id);
            self.leases.forget_job(&job_id);
        }
        self.events.prune();
        crate::metrics::METRICS.maintenance_passes.inc();
        Ok(())
    }

    /// What the metrics port serves besides counters: queue, job and worker gauges read from
    /// Redis at each scrape, and a `/healthz` that is not-ready while Redis does not answer.
    pub fn side_door(&self) -> lorabeam_proto::metrics_http::SideDoor {
        let (store, fleet) = (self.store.clone(), self.fleet.clone());
        let refresh: lorabeam_proto::metrics_http::Refresh = std::sync::Arc::new(move || {
            let (store, fleet) = (store.clone(), fleet.clone());
            Box::pin(async move {
                // Bounded: a connection waiting for Redis to come back would hold the scrape
                // until the scraper gives up, and lorabeam_redis_up 0 would never be read. The
                // gauges keep their last values instead.
                let refresh = async {
                    if let Err(e) = crate::metrics::refresh(&store).await {
                        tracing::warn!(error = %e, "could not read queue metrics from redis");
                    }
                    if let Err(e) = fleet.refresh_gauge().await {
                        tracing::warn!(error = %e, "could not read the workers' heartbeats from redis");
                    }
                };
                if tokio::time::timeout(READINESS_TIMEOUT, refresh).await.is_err() {
                    tracing::warn!("redis did not answer the scrape's reads within {} s", READINESS_TIMEOUT.as_secs());
                }
            })
        });
        let this = self.clone();
        let readiness: lorabeam_proto::metrics_http::Readiness = std::sync::Arc::new(move || {
            let this = this.clone();
            Box::pin(async move { this.redis_answers().await })
        });
        lorabeam_proto::metrics_http::SideDoor { refresh: Some(refresh), readiness: Some(readiness) }
    }

    /// Whether Redis answers a PING in time; the error names its address. A reconnecting
    /// connection holds commands until Redis is back, so the wait is bounded here.
    pub(crate) async fn redis_answers(&self) -> std::result::Result<(), String> {
        let address = &self.redis_address;
        let mut con = self.store.con.clone();
        let command = redis::cmd("PING");
        let ping = command.query_async::<String>(&mut con);
        match tokio::time::timeout(READINESS_TIMEOUT, ping).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("cannot reach redis at {address}: {e}")),
            Err(_) => {
                Err(format!("cannot reach redis at {address}: no answer within {} s", READINESS_TIMEOUT.as_secs()))
            }
        }
    }

    /// Serves gRPC on `listener` until `shutdown` resolves, then drains: worker streams close
    /// after the batch they are storing and client streams at once (their peers reconnect),
    /// and it returns when every connection is closed or `options.grace` has passed.
    pub async fn serve(
        self,
        listener: TcpListener,
        options: ServeOptions,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<()> {
        let max_message_bytes = options.max_message_bytes;
        let (drain, grace) = (self.drain.clone(), options.grace);
        let (health, health_service) = tonic_health::server::health_reporter();
        set_health(&health, true).await;
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let reflection_v1 = reflection().build_v1().map_err(|e| CoordinatorError::Internal(e.to_string()))?;
        let reflection_v1alpha = reflection().build_v1alpha().map_err(|e| CoordinatorError::Internal(e.to_string()))?;

        let maintenance = {
            let this = self.clone();
            tokio::spawn(async move {
                loop {
                    // Said on every pass while Redis is away, naming where it should be.
                    let answers = this.redis_answers().await;
                    // gRPC health follows Redis too, so probes on either port see the outage.
                    set_health(&health, answers.is_ok()).await;
                    crate::metrics::METRICS.redis_up.set(i64::from(answers.is_ok()));
                    if let Err(why) = answers {
                        let retry_s = MAINTENANCE_EVERY.as_secs();
                        tracing::error!(redis = %this.redis_address, "{why}; retrying in {retry_s} s");
                    } else if let Err(e) = this.maintain().await {
                        tracing::warn!(error = %e, "maintenance pass failed");
                    }
                    tokio::time::sleep(MAINTENANCE_EVERY).await;
                }
            })
        };
        let jobs = JobServiceServer::new(self.clone())
            .max_decoding_message_size(max_message_bytes)
            .max_encoding_message_size(max_message_bytes);
        let jobs = OversizeAsLimit(InterceptedService::new(jobs, options.tokens.interceptor(Role::Client)));
        let workers = WorkerServiceServer::new(self)
            .max_decoding_message_size(max_message_bytes)
            .max_encoding_message_size(max_message_bytes);
        let workers = OversizeAsLimit(InterceptedService::new(workers, options.tokens.interceptor(Role::Worker)));
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = &options.tls {
            lorabeam_proto::connect::install_crypto_provider();
            let mut config = ServerTlsConfig::new().identity(Identity::from_pem(read(&tls.cert)?, read(&tls.key)?));
            if let Some(ca) = &tls.client_ca {
                config = config.client_ca_root(Certificate::from_pem(read(ca)?));
            }
            builder = builder.tls_config(config).map_err(|e| CoordinatorError::Internal(format!("TLS: {e}")))?;
        }
        let stop = {
            let drain = drain.clone();
            async move {
                shutdown.await;
                tracing::info!(
                    open_worker_streams = drain.open_worker_streams(),
                    grace_s = grace.as_secs_f64(),
                    "shutdown: no new connections; closing worker and client streams"
                );
                drain.begin();
            }
        };
        let served = builder
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(jobs)
            .add_service(workers)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), stop);
        let served = tokio::select! {
            served = served => served,
            () = async { drain.begun().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(
                    open_worker_streams = drain.open_worker_streams(),
                    "shutdown: grace period over; closing the connections still open"
                );
                Ok(())
            }
        };
        maintenance.abort();
        tracing::info!("shutdown: gRPC stopped");
        served.map_err(|e| CoordinatorError::Internal(format!("gRPC server: {e}")))
    }
}

/// The gRPC health of the whole server ("") and of both services: SERVING while Redis answers,
/// NOT_SERVING while it does not.
async fn set_health(health: &tonic_health::server::HealthReporter, redis_answers: bool) {
    use tonic_health::ServingStatus;
    let status = if redis_answers { ServingStatus::Serving } else { ServingStatus::NotServing };
    health.set_service_status("", status).await;
    health.set_service_status(<JobServiceServer<Coordinator> as tonic::server::NamedService>::NAME, status).await;
    health.set_service_status(<WorkerServiceServer<Coordinator> as tonic::server::NamedService>::NAME, status).await;
}
