"""The client against an in-process fake coordinator that drops streams half way: retries, the
DataEnd checksum, idempotency keys, result offsets, paging and failover. Run with
`python -m unittest discover clients/python/tests` (tests/integration/python_client.rs does);
the real coordinator is in that test."""

import json
import threading
import unittest
from concurrent import futures

import grpc

from lorabeam_client import Client, JobFailed, LorabeamError, Prediction, fnv1a64, pb, pb_grpc


class FakeCoordinator(pb_grpc.JobServiceServicer):
    def __init__(self):
        self.lock = threading.Lock()
        self.drop_watch = 1
        self.drop_results = 1
        self.drop_submit = 0
        self.jobs = {}
        self.submissions = 0
        self.spec = None

    def SubmitJob(self, request_iterator, context):
        spec, data, end = None, b"", None
        for message in request_iterator:
            kind = message.WhichOneof("item")
            if kind == "spec":
                spec = message.spec
            elif kind == "chunk":
                data += message.chunk.jsonl
            else:
                end = message.end
        with self.lock:
            self.submissions += 1
            if end is None or (end.bytes, end.fnv1a64) != fnv1a64([data]):
                context.abort(grpc.StatusCode.DATA_LOSS, "the stream does not match its DataEnd")
            existing = spec.idempotency_key in self.jobs
            job_id = self.jobs.setdefault(spec.idempotency_key, f"job-{len(self.jobs):016x}")
            self.spec = spec
            if self.drop_submit:
                self.drop_submit -= 1  # the job is made, the answer lost
                context.abort(grpc.StatusCode.UNAVAILABLE, "connection reset")
        return pb.SubmitJobResponse(job_id=job_id, records=len(data.splitlines()), existing=existing, shards=1)

    def WatchJob(self, request, context):
        yield pb.JobEvent(status=pb.JobStatus(job_id=request.job_id, state=pb.JOB_STATE_RUNNING, records=3))
        with self.lock:
            drop = self.drop_watch > 0
            self.drop_watch -= drop
        if drop:
            context.abort(grpc.StatusCode.UNAVAILABLE, "coordinator restarting")
        state = pb.JOB_STATE_CANCELLED if request.job_id == "cancelled" else pb.JOB_STATE_COMPLETED
        yield pb.JobEvent(status=pb.JobStatus(job_id=request.job_id, state=state, records=3, records_done=3))

    def StreamResults(self, request, context):
        for i in range(request.offset, 3):
            yield pb.Prediction(id=i, predict=[i, i + 1])
            with self.lock:
                drop = i == 1 and self.drop_results > 0
                self.drop_results -= drop
            if drop:
                context.abort(grpc.StatusCode.UNAVAILABLE, "coordinator restarting")

    def GetJob(self, request, context):
        context.abort(grpc.StatusCode.NOT_FOUND, f"no job {request.job_id}")

    def ListJobs(self, request, context):
        page = int(request.page_token or 0)
        next_token = str(page + 1) if page < 2 else ""
        return pb.ListJobsResponse(jobs=[pb.JobStatus(job_id=f"j{page}")], next_page_token=next_token)

    def ListWorkers(self, request, context):
        return pb.ListWorkersResponse(workers=[pb.WorkerInfo(worker_id="w", model_id="tiny")], model_ids=["tiny"])


RECORDS = [{"context": [1, 2], "completion": [3]}] * 3


class ClientTest(unittest.TestCase):
    def setUp(self):
        self.fake = FakeCoordinator()
        self.server = grpc.server(futures.ThreadPoolExecutor(4))
        pb_grpc.add_JobServiceServicer_to_server(self.fake, self.server)
        self.url = f"http://127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()
        self.client = Client(self.url, reconnect_secs=10, quiet=True)

    def tearDown(self):
        self.client.close()
        self.server.stop(None)

    def test_fnv1a64_is_the_data_end_checksum(self):
        self.assertEqual(fnv1a64([b"a"]), (1, 0xAF63DC4C8601EC8C))
        self.assertEqual(fnv1a64([b"ab", b"c"]), fnv1a64([b"abc"]))

    def test_submit_sends_flags_and_a_checksum_and_a_lost_answer_is_sent_again_under_one_key(self):
        self.fake.drop_submit = 1
        job = self.client.submit(RECORDS, "tiny", beam=2, eos_token_id=[628], batch_size=1)
        self.assertEqual((self.fake.submissions, len(self.fake.jobs)), (2, 1))
        self.assertTrue(job.existing, "the retry found the job the lost answer made")
        self.assertEqual(job.records, 3)
        params = self.fake.spec.params
        self.assertEqual((params.beam, list(params.extra_eos_token_ids), params.eval_len), (2, [628], 256))
        self.assertEqual(self.fake.spec.reference_batch_size, 1)
        again = self.client.submit(RECORDS, "tiny", idempotency_key=job.idempotency_key)
        self.assertEqual((again.job_id, again.existing), (job.job_id, True))

    def test_an_object_url_goes_to_the_coordinator_unread(self):
        self.client.submit("s3://bucket/e2e/test.jsonl", "tiny")
        self.assertEqual(self.fake.spec.data_url, "s3://bucket/e2e/test.jsonl")
        self.assertEqual(self.fake.spec.name, "s3://bucket/e2e/test.jsonl")

    def test_big_data_goes_in_chunks_that_add_up(self):
        body = b"".join(json.dumps({"context": [i] * 40, "completion": [1]}).encode() + b"\n" for i in range(20000))
        self.assertGreater(len(body), 2 << 20)
        self.assertEqual(self.client.submit(body, "tiny").records, 20000)

    def test_watch_and_results_ride_out_a_dropped_stream(self):
        states = [s.state for s in self.client.watch("j")]
        self.assertEqual(states[-1], pb.JOB_STATE_COMPLETED)
        self.assertEqual(self.client.wait("j").records_done, 3)
        predictions = list(self.client.results("j"))
        self.assertEqual(predictions, [Prediction(i, [i, i + 1]) for i in range(3)], "each once, in order")
        self.assertEqual(list(self.client.results("j", offset=2)), [Prediction(2, [2, 3])])

    def test_wait_raises_for_a_job_that_did_not_complete(self):
        with self.assertRaises(JobFailed) as caught:
            self.client.wait("cancelled")
        self.assertEqual(caught.exception.status.state, pb.JOB_STATE_CANCELLED)
        self.assertEqual(self.client.wait("cancelled", check=False).state, pb.JOB_STATE_CANCELLED)

    def test_refusals_are_not_retried_and_say_their_code(self):
        with self.assertRaises(LorabeamError) as caught:
            self.client.get("job-x")
        self.assertEqual(caught.exception.code, grpc.StatusCode.NOT_FOUND)
        self.assertIn("NOT_FOUND: no job job-x", str(caught.exception))

    def test_jobs_reads_every_page_and_workers_the_fleet(self):
        self.assertEqual([j.job_id for j in self.client.jobs()], ["j0", "j1", "j2"])
        self.assertEqual(self.client.workers().model_ids, ["tiny"])

    def test_the_next_listed_coordinator_is_dialled(self):
        with Client(f"http://127.0.0.1:1,{self.url}", reconnect_secs=10, quiet=True) as client:
            self.assertEqual(client.workers().model_ids, ["tiny"])

    def test_an_unreachable_coordinator_is_given_up_after_reconnect_secs(self):
        with Client("http://127.0.0.1:1", reconnect_secs=0.5, quiet=True) as client:
            with self.assertRaises(LorabeamError) as caught:
                client.workers()
        self.assertEqual(caught.exception.code, grpc.StatusCode.UNAVAILABLE)
        self.assertIn("unreachable for", str(caught.exception))

    def test_text_jsonl_and_unknown_flags_are_refused_before_sending(self):
        with self.assertRaisesRegex(ValueError, "text JSONL"):
            self.client.submit(b'{"context": "name : x", "completion": "y"}\n', "tiny")
        with self.assertRaisesRegex(TypeError, "temperature"):
            self.client.submit(RECORDS, "tiny", temperature=0.7)
        self.assertEqual(self.fake.submissions, 0)


if __name__ == "__main__":
    unittest.main()
