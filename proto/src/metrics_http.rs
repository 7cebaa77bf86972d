//! The HTTP side door of every lorabeam process: Prometheus `/metrics` and a `/healthz` probe.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{Encoder, Registry, TextEncoder};

/// Brings gauges up to date just before a scrape (e.g. queue depth read from Redis).
pub type Refresh = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Serves `/metrics` from `registry` and `/healthz` on `listener` until the process ends.
pub async fn serve_metrics(listener: tokio::net::TcpListener, registry: Registry, refresh: Option<Refresh>) {
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
    let app = axum::Router::new().route("/metrics", get(metrics)).route("/healthz", get(|| async { "ok\n" }));
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "metrics server stopped");
    }
}
