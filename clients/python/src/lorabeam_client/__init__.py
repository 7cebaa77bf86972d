"""lorabeam's Python client: submit test sets to a coordinator, follow the jobs, fetch their
predictions. See `Client`; the gRPC stubs generated from lorabeam.proto are `lorabeam_client.pb`
(messages) and `lorabeam_client.pb_grpc` (services)."""

from ._pb import lorabeam_pb2 as pb
from ._pb import lorabeam_pb2_grpc as pb_grpc
from .client import (
    CHUNK_BYTES,
    DECODE_DEFAULTS,
    Client,
    JobFailed,
    JobStatus,
    LorabeamError,
    Prediction,
    Submitted,
    WorkerInfo,
    Workers,
    fnv1a64,
    is_final,
    state_name,
    write_jsonl,
)

__all__ = [
    "CHUNK_BYTES",
    "DECODE_DEFAULTS",
    "Client",
    "JobFailed",
    "JobStatus",
    "LorabeamError",
    "Prediction",
    "Submitted",
    "WorkerInfo",
    "Workers",
    "fnv1a64",
    "is_final",
    "pb",
    "pb_grpc",
    "state_name",
    "write_jsonl",
]
