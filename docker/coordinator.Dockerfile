# syntax=docker/dockerfile:1
# lorabeam coordinator: gRPC job intake, Redis shard queue, ordered JSONL outputs. No libtorch.
#
#   docker build -f docker/coordinator.Dockerfile -t lorabeam/coordinator:0.1.0 .
#
# The proto crate compiles its .proto files with protox (pure Rust): no protoc needed.

ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target,id=lorabeam-coordinator-target \
    cargo build --release --locked -p lorabeam-coordinator \
    && install -D -m 0755 target/release/lorabeam-coordinator /out/lorabeam-coordinator

FROM ${RUNTIME_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 lorabeam \
    && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin lorabeam \
    && install -d -o 10001 -g 10001 /var/lib/lorabeam/outputs
COPY --from=build /out/lorabeam-coordinator /usr/local/bin/lorabeam-coordinator
USER 10001:10001
ENV LORABEAM_LISTEN=0.0.0.0:50051 \
    LORABEAM_METRICS_LISTEN=0.0.0.0:9090 \
    LORABEAM_OUTPUT_DIR=/var/lib/lorabeam/outputs
# gRPC (lorabeam.v1, grpc.health.v1, reflection) and HTTP /metrics, /healthz.
EXPOSE 50051 9090
ENTRYPOINT ["/usr/local/bin/lorabeam-coordinator"]
