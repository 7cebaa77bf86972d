//! The bad-input catalogue: malformed JSONL records, decoding parameters and gRPC messages sent
//! to a real coordinator, and broken checkpoint files given to `lorabeam run`. Each must get
//! its specific error, never a panic, and leave nothing stored or queued. Prints the table.

mod support;

use std::path::Path;
use std::process::Command;

use lorabeam_core::DecodeParams;
use lorabeam_proto::submission::DataDigest;
use lorabeam_proto::v1::{self, JobServiceClient, JobSpec, JobStatus, RecordChunk, SubmitItem, SubmitJobRequest};
use lorabeam_worker::checkpoint::{load_state_dict, save_torch_checkpoint};
use support::cluster::{http_get, Coordinator, Redis};
use support::*;
use tonic::Code;

const GOOD: &str = "{\"context\": [1, 2, 3], \"completion\": [4]}\n";

fn spec(params: DecodeParams) -> SubmitJobRequest {
    let spec = JobSpec {
        model_id: "tiny".into(),
        params: Some(v1::DecodeParams::try_from(&params).expect("fits")),
        ..Default::default()
    };
    SubmitJobRequest { item: Some(SubmitItem::Spec(spec)) }
}

fn chunk(bytes: &[u8]) -> SubmitJobRequest {
    SubmitJobRequest { item: Some(SubmitItem::Chunk(RecordChunk { jsonl: bytes.to_vec() })) }
}

/// The DataEnd of `bytes` sent whole: what a well-formed submission ends with.
fn end_of(bytes: &[u8]) -> SubmitJobRequest {
    let mut digest = DataDigest::default();
    digest.update(bytes);
    SubmitJobRequest { item: Some(SubmitItem::End(digest.end())) }
}

fn small() -> DecodeParams {
    DecodeParams { beam: 2, eval_len: 8, seq_len: 64, ..Default::default() }
}

/// One entry of the catalogue: what is sent, and the code and words the answer must have.
struct Case {
    area: &'static str,
    name: &'static str,
    messages: Vec<SubmitJobRequest>,
    code: Code,
    expect: &'static str,
}

fn data(name: &'static str, bytes: &[u8], expect: &'static str) -> Case {
    let messages = vec![spec(small()), chunk(bytes), end_of(bytes)];
    Case { area: "jsonl", name, messages, code: Code::InvalidArgument, expect }
}

fn params(name: &'static str, params: DecodeParams, code: Code, expect: &'static str) -> Case {
    let messages = vec![spec(params), chunk(GOOD.as_bytes()), end_of(GOOD.as_bytes())];
    Case { area: "params", name, messages, code, expect }
}

fn grpc(name: &'static str, messages: Vec<SubmitJobRequest>, code: Code, expect: &'static str) -> Case {
    Case { area: "grpc", name, messages, code, expect }
}

fn catalogue() -> Vec<Case> {
    let long_line = format!("{{\"context\": [{}]}}\n", vec!["7"; 3000].join(", "));
    let many_tokens = format!("{{\"context\": [{}]}}\n", vec!["7"; 400].join(","));
    let many_lines = GOOD.repeat(201);
    let mut no_params = spec(small());
    if let Some(SubmitItem::Spec(s)) = &mut no_params.item {
        s.params = None;
    }
    let with_model = |model_id: &str| {
        let mut m = spec(small());
        if let Some(SubmitItem::Spec(s)) = &mut m.item {
            s.model_id = model_id.into();
        }
        m
    };
    let with_spec = |edit: &dyn Fn(&mut JobSpec)| {
        let mut m = spec(small());
        if let Some(SubmitItem::Spec(s)) = &mut m.item {
            edit(s);
        }
        vec![m, chunk(GOOD.as_bytes()), end_of(GOOD.as_bytes())]
    };
    let long_key = with_spec(&|s| s.idempotency_key = "k".repeat(300));
    let long_name = with_spec(&|s| s.name = "n".repeat(64 << 10));
    let many_eos = DecodeParams { extra_eos_token_ids: (0..200_000).map(|i| i % 50_000).collect(), ..small() };
    let long_value = format!("{{\"context\": [1, \"{}\"]}}\n", "v".repeat(3000));
    let mut bad_lines_long_name = spec(small());
    if let Some(SubmitItem::Spec(s)) = &mut bad_lines_long_name.item {
        s.name = "m".repeat(1000);
    }
    let d = small();
    let inv = Code::InvalidArgument;
    vec![
        data("invalid UTF-8", b"{\"context\": [1]}\n\xff\xfe\xfd\n", "<submitted data>:2: line is not valid UTF-8"),
        data("huge line", long_line.as_bytes(), "bytes, over the limit of 4096"),
        data("negative id", b"{\"context\": [1, -5]}\n", "element 1 is not a non-negative integer token id: -5"),
        data(
            "id outside the vocabulary",
            b"{\"context\": [50257]}\n",
            "token id 50257 at index 0 is outside the vocabulary",
        ),
        data("float id", b"{\"context\": [1.5]}\n", "is not a non-negative integer token id: 1.5"),
        data("id too big for any integer", b"{\"context\": [1e30]}\n", "not a non-negative integer token id"),
        data("nested array", b"{\"context\": [[1]]}\n", "not a non-negative integer token id: [1]"),
        data("empty file", b"", "holds no records"),
        data("only a newline", b"\n", "holds no records"),
        data("not JSON", b"{\"context\": [1, 2\n", "<submitted data>:1: not JSON"),
        data("JSON array instead of object", b"[1, 2, 3]\n", "not a JSON object"),
        data("context missing", b"{\"completion\": [1]}\n", "field `context` is missing"),
        data("context is a string", b"{\"context\": \"1 2 3\"}\n", "field `context` must be an array of token ids"),
        data("context is null", b"{\"context\": null}\n", "field `context` must be an array of token ids"),
        data("empty context", b"{\"context\": []}\n", "field `context` is empty"),
        data(
            "blank line between records",
            b"{\"context\": [1]}\n\n{\"context\": [2]}\n",
            "<submitted data>:2: empty line",
        ),
        data("bad completion", b"{\"context\": [1], \"completion\": [\"x\"]}\n", "field `completion`: element 0"),
        data(
            "context over the token limit",
            many_tokens.as_bytes(),
            "field `context` has 400 tokens, over the limit of 300",
        ),
        data("too many lines", many_lines.as_bytes(), "has more than 200 lines"),
        data("bad line among many (counted)", b"x\ny\nz\n", "has 3 bad line(s)"),
        params("beam 0", DecodeParams { beam: 0, ..d.clone() }, inv, "--beam must be at least 1"),
        params("eval_len 0", DecodeParams { eval_len: 0, ..d.clone() }, inv, "--eval_len must be at least 1"),
        params("seq_len not above eval_len", DecodeParams { seq_len: 8, ..d.clone() }, inv, "must exceed --eval_len 8"),
        params(
            "seq_len past n_positions",
            DecodeParams { seq_len: 2048, ..d.clone() },
            inv,
            "exceeds the model's 1024 positions",
        ),
        params(
            "eval_len over the service limit",
            DecodeParams { eval_len: 2000, seq_len: 2048, ..d.clone() },
            Code::ResourceExhausted,
            "--eval_len 2000 is over this coordinator's limit of 1024",
        ),
        params(
            "beam over the service limit",
            DecodeParams { beam: 65, ..d.clone() },
            Code::ResourceExhausted,
            "--beam 65 is over this coordinator's limit of 64",
        ),
        params(
            "repetition_penalty 0",
            DecodeParams { repetition_penalty: 0.0, ..d.clone() },
            inv,
            "--repetition_penalty must be a finite number above 0",
        ),
        params(
            "length_penalty NaN",
            DecodeParams { length_penalty: f64::NAN, ..d.clone() },
            inv,
            "--length_penalty must be a finite number",
        ),
        params(
            "eos id outside the vocabulary",
            DecodeParams { extra_eos_token_ids: vec![60000], ..d.clone() },
            inv,
            "--eos_token_id 60000 is outside the vocabulary",
        ),
        grpc("no messages", vec![], inv, "the first SubmitJob message must be a JobSpec"),
        grpc(
            "records before the spec",
            vec![chunk(GOOD.as_bytes()), spec(small())],
            inv,
            "the first SubmitJob message must be a JobSpec",
        ),
        grpc("two specs", vec![spec(small()), spec(small())], inv, "only the first SubmitJob message may be a JobSpec"),
        grpc(
            "an empty message",
            vec![spec(small()), SubmitJobRequest { item: None }],
            inv,
            "a SubmitJob message carries nothing",
        ),
        grpc("spec without params", vec![no_params, chunk(GOOD.as_bytes())], inv, "params are missing"),
        grpc(
            "model id with a slash",
            vec![with_model("a/b"), chunk(GOOD.as_bytes())],
            inv,
            "model_id `a/b` must be 1 to 128 characters",
        ),
        grpc("empty model id", vec![with_model(""), chunk(GOOD.as_bytes())], inv, "model_id `` must be"),
        grpc(
            "idempotency key too long",
            long_key,
            Code::ResourceExhausted,
            "idempotency_key in bytes is 300, over this coordinator's limit of 256",
        ),
        grpc(
            "job name too long",
            long_name,
            Code::ResourceExhausted,
            "the job's name in bytes is 65536, over this coordinator's limit of 1024",
        ),
        params(
            "200,000 extra eos ids",
            many_eos,
            Code::ResourceExhausted,
            "the number of extra eos token ids is 200000, over this coordinator's limit of 64",
        ),
        grpc(
            "model id of 100,000 bytes (quoted short)",
            vec![with_model(&"a".repeat(100_000)), chunk(GOOD.as_bytes())],
            inv,
            "…` (100000 bytes) must be 1 to 128 characters",
        ),
        data("long string as a token id (quoted short)", long_value.as_bytes(), "token id: \"vvvvvvvvvv"),
        grpc(
            "bad lines under a long name (name cut)",
            vec![bad_lines_long_name, chunk(b"x\ny\nz\n"), end_of(b"x\ny\nz\n")],
            inv,
            "mmmmmmmmmm…:3: not JSON",
        ),
        grpc(
            "job over the byte limit",
            vec![spec(small()), chunk(&GOOD.repeat(2000).into_bytes())],
            Code::ResourceExhausted,
            "over this coordinator's limit of 50000 bytes",
        ),
        grpc(
            "message over the gRPC size limit",
            vec![spec(small()), chunk(&vec![b' '; 2 << 20])],
            Code::ResourceExhausted,
            "over this coordinator's limit (--max-message-bytes): decoded message length too large",
        ),
        grpc(
            "records without their DataEnd (a client's read error)",
            vec![spec(small()), chunk(GOOD.as_bytes())],
            inv,
            "ended after 42 bytes without its DataEnd message",
        ),
        grpc(
            "DataEnd counting more bytes than arrived",
            vec![spec(small()), chunk(GOOD.as_bytes()), end_of(GOOD.repeat(2).as_bytes())],
            inv,
            "the chunks hold 42 bytes, but the DataEnd message counts 84",
        ),
        grpc(
            "chunks reordered (checksum)",
            vec![
                spec(small()),
                chunk(b"{\"context\": [2]}\n"),
                chunk(b"{\"context\": [1]}\n"),
                end_of(b"{\"context\": [1]}\n{\"context\": [2]}\n"),
            ],
            inv,
            "or their checksum differs",
        ),
        grpc(
            "a chunk after the DataEnd",
            vec![spec(small()), chunk(GOOD.as_bytes()), end_of(GOOD.as_bytes()), chunk(GOOD.as_bytes())],
            inv,
            "nothing may follow the DataEnd message",
        ),
    ]
}

type NamedTensors = Vec<(String, tch::Tensor)>;

/// Broken checkpoints for `lorabeam run`: (name, file bytes or a builder, expected words).
fn checkpoint_cases(dir: &Path) -> Vec<(&'static str, std::path::PathBuf, &'static str)> {
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("write");
        path
    };
    let full = std::fs::read(fixture("lora_full.pt")).expect("fixture");
    let zip_with_pickle = |name: &str, pickle: &[u8]| {
        let path = dir.join(name);
        let script = "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1], 'w')\nz.writestr('archive/data.pkl', bytes.fromhex(sys.argv[2]))\nz.writestr('archive/version', '3\\n')\nz.close()";
        let hex: String = pickle.iter().map(|b| format!("{b:02x}")).collect();
        let status = Command::new("python3").args(["-c", script, path.to_str().expect("utf-8"), &hex]).status();
        assert!(status.is_ok_and(|s| s.success()), "python3 writes the zip");
        path
    };
    let edited = |name: &str, edit: &dyn Fn(&mut NamedTensors)| {
        let state = load_state_dict(&fixture("lora_full.pt")).expect("fixture loads");
        let mut tensors: Vec<(String, tch::Tensor)> = state.tensors.into_iter().collect();
        edit(&mut tensors);
        let path = dir.join(name);
        save_torch_checkpoint(&path, &tensors).expect("save");
        path
    };
    let c_fc = "module.transformer.h.1.mlp.c_fc.weight";
    let nan = edited("nan.pt", &|t| {
        if let Some((_, w)) = t.iter_mut().find(|(n, _)| n == c_fc) {
            *w = w.full_like(f64::NAN);
        }
    });
    let shape = edited("shape.pt", &|t| {
        if let Some((_, w)) = t.iter_mut().find(|(n, _)| n == c_fc) {
            *w = w.narrow(1, 0, 255);
        }
    });
    vec![
        ("NaN weights", nan, "holds NaN or infinite values"),
        ("wrong tensor shape", shape, "has shape [64, 255], expected [64, 256]"),
        ("empty checkpoint file", write("empty.pt", b""), "is neither a torch.save zip archive nor a safetensors file"),
        (
            "text instead of a checkpoint",
            write("text.pt", b"hello, I am not a model\n"),
            "is neither a torch.save zip archive",
        ),
        ("truncated zip", write("cut.pt", &full[..full.len() / 2]), "is corrupt or truncated"),
        (
            "pickle with an unknown opcode",
            zip_with_pickle("opcode.pt", b"\x80\x02\xff"),
            "unsupported pickle opcode 0xff",
        ),
        (
            "pickle importing os.system (never called)",
            zip_with_pickle("global.pt", b"\x80\x02cos\nsystem\n."),
            "holds no state dict",
        ),
        ("pickle whose root is a list", zip_with_pickle("list.pt", b"\x80\x02]."), "the pickle's root is not a dict"),
        ("unsupported pickle protocol", zip_with_pickle("proto.pt", b"\x80\x09}."), "unsupported pickle protocol 9"),
    ]
}

#[test]
fn every_bad_input_gets_its_own_error_and_nothing_is_queued() {
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = Redis::start(dir.path());
    let limits = [
        "--max-line-bytes",
        "4096",
        "--max-context-tokens",
        "300",
        "--max-lines",
        "200",
        "--max-job-bytes",
        "50000",
        "--max-message-bytes",
        "1048576",
    ];
    let coordinator = Coordinator::start(&redis, dir.path(), None, &limits);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let mut rows = Vec::new();
    for case in catalogue() {
        let status = runtime.block_on(async {
            let mut client = JobServiceClient::connect(coordinator.url()).await.expect("connect");
            client.submit_job(tokio_stream::iter(case.messages)).await.expect_err("must be refused")
        });
        // No answer echoes a client string at length.
        let ok = status.code() == case.code && status.message().contains(case.expect) && status.message().len() < 2048;
        rows.push((case.area, case.name, format!("{:?}", status.code()), status.message().replace('\n', " "), ok));
        assert!(
            ok,
            "{}: got {:?} `{}`, expected {:?} with `{}`",
            case.name,
            status.code(),
            status.message(),
            case.code,
            case.expect
        );
    }
    assert_eq!(redis.cli(&["KEYS", "lorabeam:*"]), "", "nothing was stored or queued");
    let missing = runtime.block_on(async {
        let mut client = JobServiceClient::connect(coordinator.url()).await.expect("connect");
        client.get_job(v1::GetJobRequest { job_id: "job-0000000000000000".into() }).await.expect_err("no such job")
    });
    assert_eq!(missing.code(), Code::NotFound);
    rows.push(("grpc", "GetJob of an unknown job", format!("{:?}", missing.code()), missing.message().into(), true));

    let data = head(&conformance_dir().join("data/e2e_test_public.jsonl"), 2, dir.path(), "data.jsonl");
    for (name, path, expect) in checkpoint_cases(dir.path()) {
        let mut args =
            strings(&["run", "--device", "cpu", "--data", data.to_str().expect("utf-8"), "--init_checkpoint"]);
        args.push(path.to_str().expect("utf-8").into());
        args.extend(tiny_model_args());
        args.extend(strings(&[
            "--eval_len",
            "8",
            "--seq_len",
            "64",
            "--work_dir",
            dir.path().join("out").to_str().expect("utf-8"),
        ]));
        let out = lorabeam(&args);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let ok = !out.status.success() && stderr.contains(expect) && !stderr.contains("panicked");
        assert!(ok, "{name}: {stderr}");
        assert!(!dir.path().join("out/beam_prediction.jsonl").exists());
        rows.push((
            "checkpoint",
            name,
            format!("exit {}", out.status.code().unwrap_or(-1)),
            stderr.trim().replace('\n', " "),
            ok,
        ));
    }
    eprintln!("| # | area | input | answer | message |");
    eprintln!("|---|---|---|---|---|");
    for (i, (area, name, code, message, _)) in rows.iter().enumerate() {
        let message: String = message.chars().take(110).collect();
        eprintln!("| {} | {area} | {name} | {code} | {message} |", i + 1);
    }
    eprintln!("bad inputs: {} cases, {} refused as expected", rows.len(), rows.iter().filter(|r| r.4).count());
    assert!(rows.len() >= 30);
}

/// A job the coordinator accepted (no worker serves it, so it stays running).
async fn submit_good(client: &mut JobServiceClient<tonic::transport::Channel>) -> String {
    let messages = vec![spec(small()), chunk(GOOD.as_bytes()), end_of(GOOD.as_bytes())];
    client.submit_job(tokio_stream::iter(messages)).await.expect("a good job is accepted").into_inner().job_id
}

/// The value of one counter line (`name{labels}`) on a metrics page, 0 when absent.
fn counter(metrics: &str, series: &str) -> f64 {
    metrics.lines().find_map(|line| line.strip_prefix(series).and_then(|rest| rest.trim().parse().ok())).unwrap_or(0.0)
}

#[test]
fn malformed_job_ids_are_not_found_and_never_reach_redis() {
    use lorabeam_proto::v1::{
        CancelJobRequest, GetJobRequest, ItemResult, Report, ShardFinished, StreamResultsRequest, WatchJobRequest,
        WorkerReport, WorkerServiceClient,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = Redis::start(dir.path());
    let coordinator = Coordinator::start(&redis, dir.path(), None, &[]);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let mut client = JobServiceClient::connect(coordinator.url()).await.expect("connect");
        let job = submit_good(&mut client).await;
        let keys = || {
            let mut keys: Vec<String> = redis.cli(&["KEYS", "lorabeam:*"]).lines().map(String::from).collect();
            keys.sort();
            keys
        };
        let before = keys();
        let bad = [
            format!("{job}:results"),
            format!("{job}:plan"),
            format!("{job}:failed"),
            "job-none".to_string(),
            job.to_uppercase(),
            "x".repeat(100_000),
            String::new(),
        ];
        for id in &bad {
            let shown: String = id.chars().take(40).collect();
            let refusals = [
                ("GetJob", client.get_job(GetJobRequest { job_id: id.clone() }).await.map(|_| ())),
                ("WatchJob", client.watch_job(WatchJobRequest { job_id: id.clone() }).await.map(|_| ())),
                ("CancelJob", client.cancel_job(CancelJobRequest { job_id: id.clone() }).await.map(|_| ())),
                (
                    "StreamResults",
                    client.stream_results(StreamResultsRequest { job_id: id.clone(), offset: 0 }).await.map(|_| ()),
                ),
            ];
            for (rpc, answer) in refusals {
                let status = answer.expect_err("a malformed id is refused");
                assert_eq!(status.code(), Code::NotFound, "{rpc}({shown}): {}", status.message());
                assert!(status.message().contains("job ids are `job-` and 16 lowercase hex digits"), "{rpc}");
                assert!(status.message().len() < 200, "{rpc} echoes the id: {} bytes", status.message().len());
            }
        }
        // A worker reporting for a key-shaped id is refused before any key is built.
        let mut workers = WorkerServiceClient::connect(coordinator.url()).await.expect("connect");
        let report = WorkerReport {
            report: Some(Report::Result(ItemResult {
                job_id: format!("{job}:plan"),
                shard_id: "s0".into(),
                item: 0,
                predict: vec![1],
                ..Default::default()
            })),
        };
        let mut confirmations =
            workers.report(tokio_stream::iter(vec![report])).await.expect("stream opens").into_inner();
        let status = confirmations.message().await.expect_err("the report is refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
        assert!(status.message().contains("bad worker report: no job"), "{}", status.message());
        // A shard id goes into a Redis set: one that is not of the issued form is refused too.
        let finished = WorkerReport {
            report: Some(Report::Finished(ShardFinished {
                job_id: job.clone(),
                shard_id: "s".repeat(100_000),
                ..Default::default()
            })),
        };
        let mut confirmations =
            workers.report(tokio_stream::iter(vec![finished])).await.expect("stream opens").into_inner();
        let status = confirmations.message().await.expect_err("the report is refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
        assert!(status.message().contains("is not a shard id") && status.message().len() < 300);
        assert_eq!(keys(), before, "no key was written");
        let status = client.get_job(GetJobRequest { job_id: job.clone() }).await.expect("the real job is intact");
        assert_eq!(status.into_inner().records, 1);
    });
    let metrics = http_get(coordinator.metrics_port, "/metrics");
    assert_eq!(counter(&metrics, "lorabeam_errors_total{kind=\"redis\"}"), 0.0, "{metrics}");
    assert_eq!(counter(&metrics, "lorabeam_errors_total{kind=\"corrupt_state\"}"), 0.0, "{metrics}");
    assert_eq!(counter(&metrics, "lorabeam_errors_total{kind=\"invalid_job_id\"}"), 28.0, "{metrics}");
}

#[test]
fn huge_names_are_refused_and_list_jobs_pages() {
    use lorabeam_proto::v1::ListJobsRequest;
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = Redis::start(dir.path());
    let coordinator = Coordinator::start(&redis, dir.path(), None, &[]);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let mut client = JobServiceClient::connect(coordinator.url()).await.expect("connect");
        // Two 9 MiB names used to make ListJobs too large for everyone.
        for _ in 0..2 {
            let mut huge = spec(small());
            if let Some(SubmitItem::Spec(s)) = &mut huge.item {
                s.name = "n".repeat(9 << 20);
            }
            let status = client
                .submit_job(tokio_stream::iter(vec![huge, chunk(GOOD.as_bytes())]))
                .await
                .expect_err("a 9 MiB name is refused");
            assert_eq!(status.code(), Code::ResourceExhausted, "{}", status.message());
            assert!(status.message().contains("name in bytes is 9437184, over"), "{}", status.message());
            assert!(status.message().len() < 200);
        }
        assert_eq!(redis.cli(&["KEYS", "lorabeam:*"]), "", "nothing stored");
        let mut submitted = Vec::new();
        for _ in 0..5 {
            submitted.push(submit_good(&mut client).await);
        }
        let list = |page_size: u32, page_token: String| {
            let mut client = client.clone();
            async move { client.list_jobs(ListJobsRequest { page_size, page_token }).await.map(|r| r.into_inner()) }
        };
        let all = list(0, String::new()).await.expect("an old client's request: the default page");
        // Oldest first; jobs created in the same millisecond come in id order.
        let in_order: Vec<String> = all.jobs.iter().map(|j| j.job_id.clone()).collect();
        let mut sorted = in_order.clone();
        sorted.sort();
        submitted.sort();
        assert_eq!(sorted, submitted);
        assert_eq!(all.next_page_token, "");
        let (mut seen, mut token, mut pages) = (Vec::new(), String::new(), Vec::new());
        loop {
            let page = list(2, token).await.expect("a page");
            pages.push(page.jobs.len());
            seen.extend(page.jobs.into_iter().map(|j| j.job_id));
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        assert_eq!(pages, [2, 2, 1]);
        assert_eq!(seen, in_order, "every job once, in the same order");
        assert_eq!(list(5000, String::new()).await.expect("clamped").jobs.len(), 5);
        for bad in ["zzz", "12.job-none", &"t".repeat(100_000)] {
            let status = list(2, bad.to_string()).await.expect_err("a token it did not give");
            assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
            assert!(status.message().contains("is not one this coordinator gave"), "{}", status.message());
            assert!(status.message().len() < 200);
        }
    });
    let metrics = http_get(coordinator.metrics_port, "/metrics");
    assert_eq!(counter(&metrics, "lorabeam_limit_rejections_total{limit=\"name_bytes\"}"), 2.0, "{metrics}");
}

#[test]
fn a_huge_failure_reason_is_stored_cut_and_printed_escaped() {
    use lorabeam_proto::v1::{GetJobRequest, ItemFailed, Report, WorkerReport, WorkerServiceClient};
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = Redis::start(dir.path());
    let coordinator = Coordinator::start(&redis, dir.path(), None, &[]);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let reason = format!("\u{1b}[2J\u{1b}[31mPWNED\r{}", "x".repeat(4 << 20));
    let job = runtime.block_on(async {
        let mut client = JobServiceClient::connect(coordinator.url()).await.expect("connect");
        let job = submit_good(&mut client).await;
        // A worker (or something holding its token) fails the job's only item with 4 MiB.
        let mut workers =
            WorkerServiceClient::connect(coordinator.url()).await.expect("connect").max_encoding_message_size(8 << 20);
        let failed = WorkerReport {
            report: Some(Report::Failed(ItemFailed {
                job_id: job.clone(),
                shard_id: "s".into(),
                item: 0,
                reason: reason.clone(),
                ..Default::default()
            })),
        };
        let mut confirmations = workers.report(tokio_stream::iter(vec![failed])).await.expect("opens").into_inner();
        while confirmations.message().await.expect("no error").is_some() {}
        let mut status = JobStatus::default();
        for _ in 0..100 {
            status = client.get_job(GetJobRequest { job_id: job.clone() }).await.expect("get").into_inner();
            if lorabeam_proto::job_state_is_final(status.state) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(status.state, v1::JobState::Failed as i32, "{status:?}");
        assert!(status.error.len() < 4096 + 100, "the reason is stored cut: {} bytes", status.error.len());
        assert!(status.error.contains(&format!("[cut: {} bytes in all]", reason.len())), "{}", &status.error[..80]);
        job
    });
    let stored = redis.cli(&["HSTRLEN", &format!("lorabeam:job:{job}:failed"), "0"]);
    assert!(stored.trim().parse::<usize>().expect("a length") < 4096 + 100, "stored: {stored}");
    let url = coordinator.url();
    for args in [vec!["jobs", "--coordinator", &url], vec!["watch", &job, "--coordinator", &url]] {
        let out = lorabeam(&strings(&args));
        for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            assert!(
                !bytes.iter().any(|&b| b == 0x1b || b == b'\r'),
                "{args:?} {stream} prints raw control bytes: {}",
                String::from_utf8_lossy(bytes)
            );
        }
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        assert!(text.contains("\\u{1b}[31mPWNED\\r"), "{args:?} shows the reason escaped: {text}");
        assert!(text.len() < 3 * (4096 + 200), "{args:?} printed {} bytes", text.len());
    }
}

#[test]
fn oversize_and_undecodable_messages_are_errors_the_caller_sees() {
    use lorabeam_proto::v1::{
        GetJobRequest, ItemFailed, ListJobsRequest, Report, ShardConfirmed, WatchJobRequest, WorkerReport,
        WorkerServiceClient,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = Redis::start(dir.path());
    let coordinator = Coordinator::start(&redis, dir.path(), None, &["--max-message-bytes", "1048576"]);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let huge_id = format!("job-{}", "0".repeat(2 << 20));
    let too_large = |rpc: &str, status: tonic::Status| {
        assert_eq!(status.code(), Code::ResourceExhausted, "{rpc}: {}", status.message());
        assert!(status.message().contains("(--max-message-bytes): decoded message length too large"), "{rpc}");
    };
    runtime.block_on(async {
        let mut client =
            JobServiceClient::connect(coordinator.url()).await.expect("connect").max_encoding_message_size(8 << 20);
        let status = client.get_job(GetJobRequest { job_id: huge_id.clone() }).await.expect_err("too large");
        too_large("GetJob", status);
        let status = client.watch_job(WatchJobRequest { job_id: huge_id.clone() }).await.expect_err("too large");
        too_large("WatchJob", status);
        let messages = vec![spec(small()), chunk(&vec![b' '; 2 << 20])];
        too_large("SubmitJob", client.submit_job(tokio_stream::iter(messages)).await.expect_err("too large"));

        // An 18 MiB-style report (here 2 MiB over a 1 MiB limit) ends the stream with the error.
        let job = submit_good(&mut client).await;
        let mut workers =
            WorkerServiceClient::connect(coordinator.url()).await.expect("connect").max_encoding_message_size(8 << 20);
        let failed = WorkerReport {
            report: Some(Report::Failed(ItemFailed {
                job_id: job.clone(),
                shard_id: "s".into(),
                item: 0,
                reason: "r".repeat(2 << 20),
                ..Default::default()
            })),
        };
        let mut confirmations = workers.report(tokio_stream::iter(vec![failed])).await.expect("opens").into_inner();
        too_large("Report", confirmations.message().await.expect_err("the worker learns its report was refused"));

        // A frame that is not a WorkerReport (field 1 as a varint) is an error too, not an OK end.
        let channel =
            tonic::transport::Channel::from_shared(coordinator.url()).expect("url").connect().await.expect("connect");
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.expect("ready");
        let path = tonic::codegen::http::uri::PathAndQuery::from_static("/lorabeam.v1.WorkerService/Report");
        let codec = tonic_prost::ProstCodec::<ListJobsRequest, ShardConfirmed>::default();
        let garbage = tokio_stream::iter(vec![ListJobsRequest { page_size: 5, page_token: String::new() }]);
        let mut answers = grpc.streaming(tonic::Request::new(garbage), path, codec).await.expect("opens").into_inner();
        let status = answers.message().await.expect_err("an undecodable frame is refused");
        assert_eq!(status.code(), Code::Internal, "{}", status.message());
        assert!(status.message().contains("decode"), "{}", status.message());
        let status = client.get_job(GetJobRequest { job_id: job }).await.expect("the job is intact").into_inner();
        assert_eq!(status.records_done, 0, "nothing of the refused reports was stored");
    });
    let metrics = http_get(coordinator.metrics_port, "/metrics");
    assert_eq!(counter(&metrics, "lorabeam_limit_rejections_total{limit=\"message_bytes\"}"), 4.0, "{metrics}");
    let log = coordinator.stderr();
    assert!(log.lines().filter(|l| l.contains("WARN") && l.contains("worker reports refused")).count() >= 2, "{log}");
}
