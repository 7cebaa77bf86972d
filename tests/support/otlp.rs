//! An OTLP trace receiver on `127.0.0.1:0`: what a tracing backend would store, read back as
//! plain values (ids in hex, kinds and status codes as OTLP numbers, attributes typed).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value;

/// OTLP's `Span.SpanKind` and `Status.StatusCode` numbers.
pub const KIND_INTERNAL: i32 = 1;
pub const KIND_SERVER: i32 = 2;
pub const KIND_PRODUCER: i32 = 4;
pub const KIND_CONSUMER: i32 = 5;
pub const STATUS_ERROR: i32 = 2;

/// One received span.
#[derive(Debug, Clone)]
pub struct Received {
    pub trace_id: String,
    pub span_id: String,
    pub parent: String,
    pub name: String,
    pub service: String,
    pub kind: i32,
    pub status_code: i32,
    pub status_message: String,
    pub attributes: HashMap<String, Value>,
    /// (trace id, span id) of each link.
    pub links: Vec<(String, String)>,
    pub start_ns: u64,
    pub end_ns: u64,
}

impl Received {
    pub fn int(&self, key: &str) -> Option<i64> {
        match self.attributes.get(key) {
            Some(Value::IntValue(n)) => Some(*n),
            _ => None,
        }
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        match self.attributes.get(key) {
            Some(Value::StringValue(s)) => Some(s),
            _ => None,
        }
    }
}

#[derive(Clone, Default)]
pub struct Receiver(Arc<Mutex<Vec<Received>>>);

impl Receiver {
    /// Serves OTLP/gRPC on a free loopback port of `runtime`; returns the endpoint URL.
    pub fn serve(&self, runtime: &tokio::runtime::Runtime) -> String {
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        runtime.spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(self.clone()))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        endpoint
    }

    pub fn spans(&self) -> Vec<Received> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for resource_spans in request.into_inner().resource_spans {
            let attributes = resource_spans.resource.map(|r| r.attributes).unwrap_or_default();
            let service = attributes
                .iter()
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(Value::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                let status = span.status.unwrap_or_default();
                spans.push(Received {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent: hex(&span.parent_span_id),
                    name: span.name,
                    service: service.clone(),
                    kind: span.kind,
                    status_code: status.code,
                    status_message: status.message,
                    attributes: span.attributes.into_iter().filter_map(|kv| Some((kv.key, kv.value?.value?))).collect(),
                    links: span.links.iter().map(|l| (hex(&l.trace_id), hex(&l.span_id))).collect(),
                    start_ns: span.start_time_unix_nano,
                    end_ns: span.end_time_unix_nano,
                });
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
