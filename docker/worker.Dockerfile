# syntax=docker/dockerfile:1
# lorabeam worker: LoRA GPT-2 beam search on libtorch (tch 0.24 = torch 2.11.0), CUDA 13.0.
#
#   docker build -f docker/worker.Dockerfile -t lorabeam/worker:0.1.0 .
#
# libtorch comes from the torch wheel in a venv at /opt/torch. The build script
# (build-support/libtorch_rpath.rs) bakes the absolute path of the wheel's torch/lib into the
# binary's RUNPATH, and torch/lib finds the CUDA libraries of the nvidia-* wheels through its
# own RPATH ($ORIGIN/../../nvidia/...). So the runtime stage copies torch/lib and
# site-packages/nvidia/ to the SAME absolute paths; no Python is needed at run time.
# The host supplies the driver (libcuda) through the NVIDIA container runtime; CUDA 13 needs
# driver 580 or newer. On a node without a GPU the worker runs with LORABEAM_DEVICE=cpu.

ARG RUST_IMAGE=rust:1-bookworm
# The wheel carries its own CUDA runtime, cuBLAS, cuDNN, NCCL..., so the small `base` flavour
# (cudart plus the NVIDIA_* settings the container runtime reads) is enough; a `runtime`
# image of the same CUDA release works too.
ARG RUNTIME_IMAGE=nvidia/cuda:13.0.2-base-ubuntu24.04
ARG TORCH_VERSION=2.11.0
# On PyPI, torch 2.11.0's default Linux x86_64 wheel already is the CUDA 13.0 build; the
# PyTorch index's cu130 channel names that choice explicitly.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu130

FROM ${RUST_IMAGE} AS build
ARG TORCH_VERSION
ARG TORCH_INDEX_URL
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
RUN --mount=type=cache,target=/root/.cache/pip \
    python3 -m venv /opt/torch \
    && /opt/torch/bin/pip install --upgrade pip \
    && /opt/torch/bin/pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"
ENV LIBTORCH_USE_PYTORCH=1 \
    PYTHON_SYS_EXECUTABLE=/opt/torch/bin/python
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target,id=lorabeam-worker-target \
    cargo build --release --locked -p lorabeam-worker \
    && install -D -m 0755 target/release/lorabeam-worker /out/lorabeam-worker
# Stage exactly what the binary loads, under the absolute paths it was linked against.
RUN set -eux; \
    torch_lib=$(/opt/torch/bin/python -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))'); \
    site=$(dirname "$(dirname "$torch_lib")"); \
    readelf -d /out/lorabeam-worker | grep -E "R(UN)?PATH" | grep -F "$torch_lib"; \
    mkdir -p /stage; \
    cp -a --parents "$torch_lib" "$site/nvidia" /stage/

FROM ${RUNTIME_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 lorabeam \
    && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
       --shell /usr/sbin/nologin lorabeam
COPY --from=build /stage/ /
COPY --from=build /out/lorabeam-worker /usr/local/bin/lorabeam-worker
# Fails the build if a library the binary needs cannot be found at its baked-in path.
RUN ! ldd /usr/local/bin/lorabeam-worker | grep -F 'not found'
USER 10001:10001
ENV HOME=/tmp \
    LORABEAM_METRICS_LISTEN=0.0.0.0:9091 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
# HTTP /metrics and /healthz; the worker serves no gRPC.
EXPOSE 9091
ENTRYPOINT ["/usr/local/bin/lorabeam-worker"]
