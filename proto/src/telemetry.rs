//! The one telemetry entry point of every lorabeam binary: logs filtered by `RUST_LOG`, OTLP
//! traces when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (with `OTEL_SERVICE_NAME`,
//! `OTEL_TRACES_SAMPLER`, `OTEL_RESOURCE_ATTRIBUTES` honoured by the SDK), and the W3C trace
//! context carried on gRPC metadata, in protocol messages and on queued shards.
//!
//! Spans follow OpenTelemetry's conventions where they apply: `otel.kind` SERVER on gRPC
//! handlers, PRODUCER where a shard is queued and CONSUMER where it is claimed; counts as
//! integer attributes ([`int`]); failed work marked with [`set_error`].

use std::collections::HashMap;
use std::time::SystemTime;

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _, TracerProvider as _};
pub use opentelemetry::KeyValue;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The W3C header and field name.
pub const TRACEPARENT: &str = "traceparent";

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(String),
    #[error("cannot install the log subscriber: {0}")]
    Subscriber(String),
}

/// Keeps the trace pipeline alive; dropping it flushes spans not yet exported.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

fn otlp_endpoint_set() -> bool {
    ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
        .iter()
        .any(|var| std::env::var(var).is_ok_and(|v| !v.trim().is_empty()))
}

/// Installs logging (to stderr) and, when an OTLP endpoint is configured, trace export. Call it
/// inside the tokio runtime: the exporter's gRPC channel is bound to it.
pub fn init(default_service_name: &str, default_filter: &str) -> Result<Telemetry, TelemetryError> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter.into());
    // Colour only on a terminal: log collectors and files get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let provider = if otlp_endpoint_set() {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        let mut resource = opentelemetry_sdk::Resource::builder();
        if std::env::var("OTEL_SERVICE_NAME").is_err() {
            resource = resource.with_service_name(default_service_name.to_string());
        }
        let provider =
            SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource.build()).build();
        // For spans recorded after the fact (record_finished_span), outside `tracing`.
        opentelemetry::global::set_tracer_provider(provider.clone());
        Some(provider)
    } else {
        None
    };
    let traces = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(default_service_name.to_string())));
    tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(traces)
        .try_init()
        .map_err(|e| TelemetryError::Subscriber(e.to_string()))?;
    Ok(Telemetry { provider })
}

struct MetadataExtractor<'a>(&'a tonic::metadata::MetadataMap);

impl Extractor for MetadataExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|k| match k {
                tonic::metadata::KeyRef::Ascii(k) => Some(k.as_str()),
                tonic::metadata::KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

/// Makes `span` a child of the trace context an incoming gRPC request carries, if any.
pub fn parent_from_metadata(span: &Span, metadata: &tonic::metadata::MetadataMap) {
    let context = TraceContextPropagator::new().extract(&MetadataExtractor(metadata));
    let _ = span.set_parent(context);
}

/// `span`'s context as a `traceparent` value, for shards and messages; `None` when tracing is off.
pub fn traceparent(span: &Span) -> Option<String> {
    let mut carrier: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// Makes `span` a child of a `traceparent` value (ignored when empty or malformed).
pub fn parent_from_traceparent(span: &Span, traceparent: &str) {
    if traceparent.is_empty() {
        return;
    }
    let carrier: HashMap<String, String> = HashMap::from([(TRACEPARENT.to_string(), traceparent.to_string())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    let _ = span.set_parent(context);
}

/// A count as a span attribute. `tracing` hands `u64` and `usize` fields to
/// tracing-opentelemetry as `Debug` values, exported as strings (`"640"`); an `i64` is exported
/// as an integer, so backends can compare it (`span.tokens > 100`). No count comes near
/// `i64::MAX`; one that did would read as `i64::MAX`.
pub fn int<T: TryInto<i64>>(count: T) -> i64 {
    count.try_into().unwrap_or(i64::MAX)
}

/// Marks `span` failed: OpenTelemetry status ERROR, with `reason` as its description.
pub fn set_error(span: &Span, reason: impl Into<String>) {
    span.set_status(Status::error(reason.into()));
}

/// Links `span` to `other` (an OpenTelemetry span link): for work that serves several traces
/// at once, as a decode batch serves shards of several jobs. Nothing when tracing is off.
pub fn add_link(span: &Span, other: &Span) {
    let context = other.context();
    span.add_link(context.span().span_context().clone());
}

/// A span to record after the fact: one that no process holds open for its whole life, as a
/// job's, from submit to completion, which may outlast a coordinator.
pub struct FinishedSpan {
    pub name: &'static str,
    /// The parent's W3C context (the span then joins its trace); empty: a root span.
    pub traceparent: String,
    pub start: SystemTime,
    pub attributes: Vec<KeyValue>,
    /// Why it failed, if it did (status ERROR).
    pub error: Option<String>,
}

/// Exports `span` as a span that ran from its start until now. Nothing when tracing is off.
pub fn record_finished_span(span: FinishedSpan) {
    let carrier: HashMap<String, String> = HashMap::from([(TRACEPARENT.to_string(), span.traceparent)]);
    let parent = TraceContextPropagator::new().extract(&carrier);
    let tracer = opentelemetry::global::tracer("lorabeam");
    let mut otel = tracer
        .span_builder(span.name)
        .with_kind(SpanKind::Internal)
        .with_start_time(span.start)
        .with_attributes(span.attributes)
        .start_with_context(&tracer, &parent);
    if let Some(reason) = span.error {
        otel.set_status(Status::error(reason));
    }
    otel.end();
}
