//! The bad-input catalogue: malformed JSONL records, decoding parameters and gRPC messages sent
//! to a real coordinator, and broken checkpoint files given to `lorabeam run`. Each must get
//! its specific error, never a panic, and leave nothing stored or queued. Prints the table.
//! Hostile RPCs beyond SubmitJob are in `hostile_rpcs.rs`.

use crate::support;

use std::path::Path;
use std::process::Command;

use lorabeam_core::DecodeParams;
use lorabeam_proto::v1::{self, JobServiceClient, JobSpec, SubmitItem, SubmitJobRequest};
use lorabeam_worker::checkpoint::{load_state_dict, save_torch_checkpoint};
use support::cluster::{Coordinator, Redis};
use support::submissions::*;
use support::*;
use tonic::Code;

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
    // The same through `lorabeam submit`: each bad line named with its file and line.
    let bad = dir.path().join("bad.jsonl");
    let text = "{\"context\": [1, 2]}\n{\"context\": [1, -2]}\nnot json\n{\"context\": [99999]}\n{\"context\": [3]}\n";
    std::fs::write(&bad, text).expect("write");
    let submit = |data: &Path, extra: &[&str]| {
        let mut args = strings(&["submit", "--coordinator", &coordinator.url(), "--model-id", "tiny", "--data"]);
        args.push(data.to_str().expect("utf-8").into());
        args.extend(strings(extra));
        lorabeam(&args)
    };
    let exit = |out: &std::process::Output| format!("exit {}", out.status.code().unwrap_or(-1));
    let out = submit(&bad, &["--wait"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success());
    for expected in ["has 3 bad line(s)", "bad.jsonl:2: field `context`", "bad.jsonl:3: not JSON", "bad.jsonl:4:"] {
        assert!(stderr.contains(expected), "missing `{expected}` in:\n{stderr}");
    }
    rows.push(("cli", "bad lines through lorabeam submit", exit(&out), stderr.trim().replace('\n', " "), true));
    let good = head(&conformance_dir().join("data/e2e_test_public.jsonl"), 4, dir.path(), "four.jsonl");
    let out = submit(&good, &["--beam", "0"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success() && stderr.contains("--beam must be at least 1"), "{stderr}");
    rows.push(("cli", "--beam 0 through lorabeam submit", exit(&out), stderr.trim().replace('\n', " "), true));
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
