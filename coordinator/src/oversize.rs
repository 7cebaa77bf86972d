//! Messages over `--max-message-bytes`: tonic refuses them with OUT_OF_RANGE before any handler
//! runs. They are a limit like the others: RESOURCE_EXHAUSTED, counted as `message_bytes`.
//! Streams map them where they read ([`crate::error::stream_error`]); this wrapper maps the
//! answers to requests that never reached a handler (a unary request too large to decode).

use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::codegen::{http, Service};
use tonic::server::NamedService;
use tonic::Status;

use crate::error::oversize;
use crate::metrics::rpc_error;

/// A gRPC service whose oversize refusals are reported as the limit they broke.
#[derive(Debug, Clone)]
pub struct OversizeAsLimit<S>(pub S);

impl<S: NamedService> NamedService for OversizeAsLimit<S> {
    const NAME: &'static str = S::NAME;
}

type BoxFuture<T, E> = Pin<Box<dyn std::future::Future<Output = Result<T, E>> + Send>>;

impl<S, B, RB> Service<http::Request<B>> for OversizeAsLimit<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<RB>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let answer = self.0.call(request);
        Box::pin(async move {
            let mut response = answer.await?;
            // A refusal before any handler is a trailers-only answer: its status is in the headers.
            if let Some(limit) = Status::from_header_map(response.headers()).as_ref().and_then(oversize) {
                if let Err(status) = rpc_error(limit).add_header(response.headers_mut()) {
                    tracing::warn!(%status, "could not rewrite an oversize refusal");
                }
            }
            Ok(response)
        })
    }
}
