"""A client of lorabeam's coordinator (JobService), doing what the `lorabeam` CLI does.

- Submitting streams the spec, the JSONL in 1 MiB chunks and a `DataEnd` with the byte count
  and FNV-1a 64 checksum of every chunk (proto/src/submission.rs), so a cut stream is refused.
- Every submission carries an idempotency key (a fresh one unless given), so a submission the
  transport dropped is sent again without starting a second job.
- Calls that follow a job (watch, wait, results) and the other unary calls ride out a
  coordinator that restarts or is unreachable: UNAVAILABLE, UNKNOWN, CANCELLED, ABORTED and
  DEADLINE_EXCEEDED are retried with backoff from 0.2 s doubling to 5 s, for as long as
  `reconnect_secs` passes without one success (src/cli/rpc.rs), dialling the next listed
  coordinator each time; results go on from the record after the last one received.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from typing import IO, Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple, TypeVar, Union

import grpc

from ._pb import lorabeam_pb2 as pb
from ._pb import lorabeam_pb2_grpc as pb_grpc

#: Bytes of JSONL per SubmitJob message, as the CLI sends them.
CHUNK_BYTES = 1 << 20
#: Largest gRPC message the client sends or accepts, as the CLI.
MAX_MESSAGE_BYTES = 64 << 20

JobStatus = pb.JobStatus
WorkerInfo = pb.WorkerInfo

#: The decoding flags `submit` takes, with gpt2_beam.py's (and `lorabeam submit`'s) names and
#: defaults.
DECODE_DEFAULTS: Dict[str, Any] = {
    "beam": 1,
    "eval_len": 256,
    "seq_len": 512,
    "min_length": 0,
    "length_penalty": 1.0,
    "no_repeat_ngram_size": 4,
    "repetition_penalty": 1.0,
    "eos_token_id": (),
}

_TRANSIENT = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
}

_FINAL_STATES = {
    pb.JOB_STATE_COMPLETED,
    pb.JOB_STATE_COMPLETED_WITH_FAILURES,
    pb.JOB_STATE_FAILED,
    pb.JOB_STATE_CANCELLED,
}

Data = Union[str, "os.PathLike[str]", bytes, IO[bytes], Iterable[Mapping[str, Any]]]
T = TypeVar("T")


class LorabeamError(Exception):
    """A call the coordinator refused or that could not reach it: `NOT_FOUND: no job ...`."""

    def __init__(self, what: str, code: Optional[grpc.StatusCode], message: str):
        self.code = code
        self.message = message
        name = code.name if code is not None else "ERROR"
        super().__init__(f"{what}: {name}: {message}")


class JobFailed(LorabeamError):
    """`wait(check=True)` on a job that ended other than completed; `status` is its last."""

    def __init__(self, status: pb.JobStatus):
        self.status = status
        state = state_name(status.state)
        detail = status.error
        if status.state == pb.JOB_STATE_COMPLETED_WITH_FAILURES:
            detail = f"{len(status.failed_ids)} failed record(s): {status.error}"
        super().__init__(f"job {status.job_id}", None, f"ended {state}: {detail}")


@dataclass(frozen=True)
class Submitted:
    """What SubmitJob answered."""

    job_id: str
    records: int
    distinct_items: int
    shards: int
    #: True when the idempotency key named a job that already existed.
    existing: bool
    idempotency_key: str


@dataclass(frozen=True)
class Prediction:
    """One output line, the reference's `{"id": N, "predict": [ids]}`."""

    id: int
    predict: List[int]

    def json(self) -> str:
        return json.dumps({"id": self.id, "predict": self.predict})


@dataclass(frozen=True)
class Workers:
    """The fleet: live workers, and every model id the coordinator takes jobs for."""

    workers: List[pb.WorkerInfo]
    model_ids: List[str]


def state_name(state: int) -> str:
    """`completed`, `completed_with_failures`, ... as the CLI prints a state."""
    return pb.JobState.Name(state).removeprefix("JOB_STATE_").lower()


def is_final(status: pb.JobStatus) -> bool:
    return status.state in _FINAL_STATES


def fnv1a64(chunks: Iterable[bytes]) -> Tuple[int, int]:
    """Bytes and FNV-1a 64 of `chunks` in order: what a `DataEnd` says."""
    h, n = 0xCBF29CE484222325, 0
    for chunk in chunks:
        for byte in chunk:
            h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
        n += len(chunk)
    return n, h


class _Retry:
    """Backoff for one call that may be retried (src/cli/rpc.rs's Retry)."""

    def __init__(self, what: str, give_up_after: float, quiet: bool):
        self.what, self.give_up_after, self.quiet = what, give_up_after, quiet
        self.failing_since: Optional[float] = None
        self.failures = 0

    def succeeded(self) -> None:
        if self.failures and not self.quiet:
            print("reconnected to the coordinator", file=sys.stderr)
        self.failing_since, self.failures = None, 0

    def failed(self, error: grpc.RpcError) -> None:
        """Sleeps before the next try, or raises when the failure is final."""
        now = time.monotonic()
        since = self.failing_since if self.failing_since is not None else now
        self.failing_since = since
        code, message = _code(error), _message(error)
        if code not in _TRANSIENT or now - since >= self.give_up_after:
            waited = ""
            if self.failures:
                waited = f" (the coordinator was unreachable for {now - since:.0f} s, reconnect_secs)"
            raise LorabeamError(self.what, code, message + waited) from None
        self.failures += 1
        delay = min(0.2 * 2 ** (min(self.failures, 5) - 1), 5.0)
        if not self.quiet and (self.failures == 1 or self.failures % 10 == 0):
            name = code.name if code else "ERROR"
            print(
                f"{self.what}: {name}: {message}; retrying (for up to {self.give_up_after:.0f} s)",
                file=sys.stderr,
            )
        time.sleep(delay)


def _code(error: grpc.RpcError) -> Optional[grpc.StatusCode]:
    code = getattr(error, "code", None)
    return code() if callable(code) else None


def _message(error: grpc.RpcError) -> str:
    details = getattr(error, "details", None)
    return (details() if callable(details) else None) or str(error)


class Client:
    """A connection to one lorabeam deployment.

    `coordinator` is a gRPC URL (`http://host:port`, `https://host:port` for TLS, or
    `host:port`), or several of one deployment comma-separated: after a failure worth retrying
    the next is dialled, as the CLI does. The token (or `token_file`) is sent as
    `authorization: Bearer ...`; `$TRACEPARENT`, when set, joins every call to the caller's
    trace. Use it as a context manager, or call `close()`.
    """

    def __init__(
        self,
        coordinator: str = "http://127.0.0.1:50051",
        *,
        token: Optional[str] = None,
        token_file: Optional[str] = None,
        tls_ca: Optional[str] = None,
        tls_cert: Optional[str] = None,
        tls_key: Optional[str] = None,
        reconnect_secs: float = 300.0,
        quiet: bool = False,
    ):
        self._targets = [t.strip() for t in coordinator.split(",") if t.strip()]
        if not self._targets:
            raise ValueError("no coordinator URL given")
        if token_file is not None:
            with open(token_file, encoding="utf-8") as f:
                token = f.read().strip()
        self._metadata: List[Tuple[str, str]] = []
        if token:
            self._metadata.append(("authorization", f"Bearer {token}"))
        traceparent = os.environ.get("TRACEPARENT")
        if traceparent:
            self._metadata.append(("traceparent", traceparent))
        self._tls = (tls_ca, tls_cert, tls_key)
        self.reconnect_secs = reconnect_secs
        self.quiet = quiet
        self._next_target = itertools.cycle(range(len(self._targets)))
        self._channel: Optional[grpc.Channel] = None
        self._stub: Optional[pb_grpc.JobServiceStub] = None
        self._dial()

    # -- connection -----------------------------------------------------------------------

    def _dial(self) -> None:
        """Opens a channel to the next listed coordinator (closing the old one)."""
        if self._channel is not None:
            self._channel.close()
        url = self._targets[next(self._next_target)]
        options = [
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ]
        if url.startswith("https://"):
            ca, cert, key = (open(p, "rb").read() if p else None for p in self._tls)
            credentials = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
            self._channel = grpc.secure_channel(url[len("https://") :], credentials, options=options)
        else:
            self._channel = grpc.insecure_channel(url.removeprefix("http://"), options=options)
        self._stub = pb_grpc.JobServiceStub(self._channel)

    @property
    def stub(self) -> pb_grpc.JobServiceStub:
        """The generated JobService stub, for what this API does not cover."""
        assert self._stub is not None
        return self._stub

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, what: str, call: Callable[[pb_grpc.JobServiceStub], T]) -> T:
        """A unary call, retried while the coordinator is away."""
        retry = _Retry(what, self.reconnect_secs, self.quiet)
        while True:
            try:
                result = call(self.stub)
                retry.succeeded()
                return result
            except grpc.RpcError as error:
                retry.failed(error)
                self._dial()

    # -- jobs -----------------------------------------------------------------------------

    def submit(
        self,
        data: Data,
        model_id: str,
        *,
        adapter: str = "",
        score: bool = False,
        idempotency_key: Optional[str] = None,
        name: Optional[str] = None,
        shard_size: int = 0,
        batch_size: int = 10,
        exact_first_step: bool = False,
        **decode_flags: Any,
    ) -> Submitted:
        """Submits a test set as a job for the workers of `model_id`.

        `data`: a path to a token-ids JSONL (`{"context": [ids], "completion": [ids]}` a line, as
        gpt2_encode.py writes it), an `http(s)://` URL of one, its bytes, a binary file, or an
        iterable of records (dicts with `context` and `completion` id lists). Text JSONL
        (`"context": "name : ..."`) must be encoded first (`lorabeam submit` does that). An
        object-storage URL (`s3://`, `gs://`, `az://`) is read by the coordinator itself, with
        its credentials (the job records the object's ETag and size); text form is fine there.
        `decode_flags`: gpt2_beam.py's names, `beam`, `eval_len`, `seq_len`, `min_length`,
        `length_penalty`, `no_repeat_ngram_size`, `repetition_penalty`, `eos_token_id` (a list);
        missing ones take gpt2_beam.py's defaults. `batch_size` is gpt2_beam.py's (it decides
        the reference's first step with beam > 1), `adapter` an adapter name the workers find
        under their --adapter-dir, `score` has the coordinator score the job when it completes.
        A transient failure sends it again with the same idempotency key (a fresh uuid unless
        given): never a second job.
        """
        unknown = sorted(set(decode_flags) - set(DECODE_DEFAULTS))
        if unknown:
            raise TypeError(f"unknown decoding flag(s) {', '.join(unknown)}; known: {', '.join(DECODE_DEFAULTS)}")
        flags = {**DECODE_DEFAULTS, **decode_flags}
        params = pb.DecodeParams(
            beam=int(flags["beam"]),
            eval_len=int(flags["eval_len"]),
            seq_len=int(flags["seq_len"]),
            min_length=int(flags["min_length"]),
            length_penalty=float(flags["length_penalty"]),
            no_repeat_ngram_size=int(flags["no_repeat_ngram_size"]),
            repetition_penalty=float(flags["repetition_penalty"]),
            extra_eos_token_ids=[int(t) for t in flags["eos_token_id"]],
        )
        key = idempotency_key or f"py-{uuid.uuid4()}"
        spec = pb.JobSpec(
            model_id=model_id,
            params=params,
            shard_size=shard_size,
            idempotency_key=key,
            name=name if name is not None else _data_name(data),
            reference_batch_size=batch_size,
            exact_first_step=exact_first_step,
            score=score,
            adapter=adapter,
        )
        if _is_object_url(data):
            spec.data_url = str(data)
            body = b""
        else:
            body = _data_bytes(data)

        def messages() -> Iterator[pb.SubmitJobRequest]:
            yield pb.SubmitJobRequest(spec=spec)
            h, n = 0xCBF29CE484222325, 0
            for start in range(0, len(body), CHUNK_BYTES):
                chunk = body[start : start + CHUNK_BYTES]
                for byte in chunk:
                    h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
                n += len(chunk)
                yield pb.SubmitJobRequest(chunk=pb.RecordChunk(jsonl=chunk))
            yield pb.SubmitJobRequest(end=pb.DataEnd(bytes=n, fnv1a64=h))

        response = self._call(
            f"submitting {spec.name}", lambda stub: stub.SubmitJob(messages(), metadata=self._metadata)
        )
        return Submitted(
            job_id=response.job_id,
            records=response.records,
            distinct_items=response.distinct_items,
            shards=response.shards,
            existing=response.existing,
            idempotency_key=key,
        )

    def get(self, job_id: str) -> pb.JobStatus:
        """A job's status now."""
        request = pb.GetJobRequest(job_id=job_id)
        return self._call(f"getting {job_id}", lambda stub: stub.GetJob(request, metadata=self._metadata))

    def watch(self, job_id: str) -> Iterator[pb.JobStatus]:
        """Every status of a job until it is final, the final one last."""
        retry = _Retry(f"watching {job_id}", self.reconnect_secs, self.quiet)
        while True:
            try:
                for event in self.stub.WatchJob(pb.WatchJobRequest(job_id=job_id), metadata=self._metadata):
                    retry.succeeded()
                    if not event.HasField("status"):
                        continue
                    yield event.status
                    if is_final(event.status):
                        return
                ended: grpc.RpcError = _Ended("the coordinator ended the watch before the job ended")
            except grpc.RpcError as error:
                ended = error
            retry.failed(ended)
            self._dial()

    def wait(
        self, job_id: str, *, check: bool = True, on_status: Optional[Callable[[pb.JobStatus], None]] = None
    ) -> pb.JobStatus:
        """Follows a job to its end and returns its final status; with `check`, a job that did
        not complete (failed, cancelled, or completed with failed records) raises `JobFailed`."""
        last = None
        for status in self.watch(job_id):
            if on_status is not None:
                on_status(status)
            last = status
        assert last is not None
        if check and last.state != pb.JOB_STATE_COMPLETED:
            raise JobFailed(last)
        return last

    def results(self, job_id: str, offset: int = 0) -> Iterator[Prediction]:
        """A job's predictions in id order from `offset`, waiting for each while it runs. A job
        that ended short of some records gives every stored one, then raises (FAILED_PRECONDITION)."""
        retry = _Retry(f"fetching {job_id}", self.reconnect_secs, self.quiet)
        next_id = offset
        while True:
            request = pb.StreamResultsRequest(job_id=job_id, offset=next_id)
            try:
                for prediction in self.stub.StreamResults(request, metadata=self._metadata):
                    retry.succeeded()
                    yield Prediction(id=prediction.id, predict=list(prediction.predict))
                    next_id = prediction.id + 1
                return
            except grpc.RpcError as error:
                retry.failed(error)
                self._dial()

    def cancel(self, job_id: str) -> pb.JobStatus:
        """Cancels a running job (its queued shards are removed; what was stored stays) and
        returns its status once the cancel has settled."""
        request = pb.CancelJobRequest(job_id=job_id)
        self._call(f"cancelling {job_id}", lambda stub: stub.CancelJob(request, metadata=self._metadata))
        return self.get(job_id)

    def jobs(self, page_size: int = 0) -> List[pb.JobStatus]:
        """Every job the coordinator keeps, oldest first (all pages)."""
        out: List[pb.JobStatus] = []
        token = ""
        while True:
            request = pb.ListJobsRequest(page_size=page_size, page_token=token)
            page = self._call("listing jobs", lambda stub: stub.ListJobs(request, metadata=self._metadata))
            out.extend(page.jobs)
            if not page.next_page_token:
                return out
            token = page.next_page_token

    def workers(self) -> Workers:
        """The live workers per model, and every model id jobs may name."""
        response = self._call(
            "listing workers", lambda stub: stub.ListWorkers(pb.ListWorkersRequest(), metadata=self._metadata)
        )
        return Workers(workers=list(response.workers), model_ids=list(response.model_ids))


class _Ended(grpc.RpcError):
    """A server stream that ended before the job did: retried like UNAVAILABLE."""

    def __init__(self, message: str):
        super().__init__(message)
        self._message = message

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return self._message


def _data_name(data: Data) -> str:
    if isinstance(data, (str, os.PathLike)):
        return os.fspath(data)
    return getattr(data, "name", "") if hasattr(data, "read") else ""


OBJECT_SCHEMES = ("s3://", "s3a://", "gs://", "az://", "adl://", "azure://", "abfs://", "abfss://")


def _is_object_url(data: Data) -> bool:
    """Whether `data` names an object the coordinator reads from its store."""
    return isinstance(data, str) and data.lower().startswith(OBJECT_SCHEMES)


def _data_bytes(data: Data) -> bytes:
    """The JSONL to send, read whole first: a read error then fails before anything is sent."""
    if isinstance(data, bytes):
        body = data
    elif isinstance(data, str) and "://" in data:
        if not data.startswith(("http://", "https://")):
            raise ValueError(f"{data}: only http(s):// URLs are fetched by the client")
        with urllib.request.urlopen(data) as response:
            body = response.read()
    elif isinstance(data, (str, os.PathLike)):
        if os.path.isdir(data):
            raise ValueError(f"{os.fspath(data)} is a directory, not a JSONL file")
        with open(data, "rb") as f:
            body = f.read()
    elif hasattr(data, "read"):
        body = data.read()  # type: ignore[union-attr]
    else:
        lines = []
        for record in data:  # type: ignore[union-attr]
            lines.append(json.dumps({"context": list(record["context"]), "completion": list(record["completion"])}))
        body = ("\n".join(lines) + "\n").encode() if lines else b""
    _refuse_text_form(body, _data_name(data))
    return body


def _refuse_text_form(body: bytes, name: str) -> None:
    """Text JSONL would be refused line by line by the coordinator; say what to do instead."""
    first = next((line for line in body.splitlines() if line.strip()), b"")
    try:
        record = json.loads(first)
    except ValueError:
        return  # the coordinator names the bad line
    if isinstance(record, dict) and isinstance(record.get("context"), str):
        raise ValueError(
            f"{name or 'the data'} is text JSONL; the Python client sends token ids: encode it as "
            "gpt2_encode.py --add_bos --add_eos does, or submit it with `lorabeam submit`"
        )


def write_jsonl(predictions: Iterable[Prediction], path: str) -> int:
    """Writes predictions as the reference's JSONL (what `lorabeam results --output` writes),
    atomically; returns how many."""
    tmp = f"{path}.tmp.{os.getpid()}"
    count = 0
    with open(tmp, "w", encoding="utf-8") as f:
        for prediction in predictions:
            f.write(prediction.json() + "\n")
            count += 1
    os.replace(tmp, path)
    return count
