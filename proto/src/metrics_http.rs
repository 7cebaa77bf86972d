//! The HTTP side door of every lorabeam process: Prometheus `/metrics`, a `/healthz` readiness
//! probe (not-ready while a dependency such as Redis is away) and a `/livez` liveness probe
//! (the process answers: restarting it would not bring Redis back).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{Encoder, Registry, TextEncoder};

/// Brings gauges up to date just before a scrape (e.g. queue depth read from Redis).
pub type Refresh = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Whether the process can do its work now (e.g. Redis answers); the error says why not.
pub type Readiness = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// What the side door serves besides the registry.
#[derive(Clone, Default)]
pub struct SideDoor {
    pub refresh: Option<Refresh>,
    /// `/healthz` answers 503 with the reason while this fails; without it, always 200.
    pub readiness: Option<Readiness>,
}

/// Serves `/metrics` from `registry`, `/healthz` and `/livez` on `listener` until the process
/// ends.
pub async fn serve_metrics(listener: tokio::net::TcpListener, registry: Registry, door: SideDoor) {
    let refresh = door.refresh;
    let metrics = move || {
        let (registry, refresh) = (registry.clone(), refresh.clone());
        async move {
            if let Some(refresh) = refresh {
                refresh().await;
            }
            let mut body = Vec::new();
            match TextEncoder::new().encode(&registry.gather(), &mut body) {
                Ok(()) => ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], body).into_response(),
                Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
            }
        }
    };
    let readiness = door.readiness;
    let health = move || {
        let readiness = readiness.clone();
        async move {
            match readiness {
                None => (StatusCode::OK, "ok\n".to_string()),
                Some(ready) => match ready().await {
                    Ok(()) => (StatusCode::OK, "ok\n".to_string()),
                    Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n")),
                },
            }
        }
    };
    let app = axum::Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(health))
        .route("/livez", get(|| async { "ok\n" }));
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "metrics server stopped");
    }
}
