//! Authentication, TLS and per-client limits on real processes: bearer-token roles, mutual TLS
//! between coordinator, worker and CLI, a `rediss://` Redis with a password, and tokens never
//! showing up in logs.

use crate::support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::cluster::{wait_until, worker, Coordinator, Process, Redis};
use support::*;

const CLIENT_TOKEN: &str = "client-7f3a9c1d0e5b";
const WORKER_TOKEN: &str = "worker-2b8e4f6a9d1c";

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A throwaway CA, a server certificate for localhost/127.0.0.1 and a client certificate.
fn make_certificates(dir: &Path) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(
        dir,
        &[
            &["req", "-x509"],
            &ec[..],
            &["-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=lorabeam test CA"],
        ]
        .concat(),
    );
    for (name, ext) in [
        ("server", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ] {
        std::fs::write(dir.join(format!("{name}.ext")), ext).expect("ext");
        let (key, csr, crt, extfile) =
            (format!("{name}.key"), format!("{name}.csr"), format!("{name}.crt"), format!("{name}.ext"));
        openssl(dir, &[&["req"], &ec[..], &["-keyout", &key, "-out", &csr, "-subj", &format!("/CN={name}")]].concat());
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "2",
                "-extfile",
                &extfile,
            ],
        );
    }
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).to_str().expect("utf-8").to_string()
}

/// `--flag dir/file` pairs, then `extra`.
fn flags(dir: &Path, files: &[(&str, &str)], extra: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for (flag, file) in files {
        out.push(flag.to_string());
        out.push(path(dir, file));
    }
    out.extend(extra.iter().map(|s| s.to_string()));
    out
}

/// A TLS-only Redis with a password (a plain port too, for the test's own redis-cli).
struct TlsRedis {
    port: u16,
    _process: Process,
}

fn start_tls_redis(dir: &Path) -> TlsRedis {
    let plain = Redis::start(dir);
    let port = plain.port + 1;
    drop(plain);
    let mut command = Command::new("redis-server");
    command
        .args(["--port", "0", "--tls-port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
        .args(["--tls-cert-file", &path(dir, "server.crt"), "--tls-key-file", &path(dir, "server.key")])
        .args(["--tls-ca-cert-file", &path(dir, "ca.crt"), "--tls-auth-clients", "no", "--requirepass", "s3cret"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("tls-redis.log")).expect("log"));
    let process = Process::from_child(command.spawn().expect("redis-server"), dir.join("tls-redis.log"));
    wait_until("the TLS redis to listen", Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    TlsRedis { port, _process: process }
}

#[test]
fn tokens_roles_and_mutual_tls_over_a_password_protected_rediss() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    make_certificates(d);
    std::fs::write(d.join("client.token"), format!("{CLIENT_TOKEN}\n")).expect("token");
    std::fs::write(d.join("worker.token"), WORKER_TOKEN).expect("token");
    let redis = start_tls_redis(d);
    // A plain Redis is only used to let Coordinator::start read its URL; the coordinator is
    // pointed at the TLS one through its flags (the later --redis-url wins).
    let rediss = format!("rediss://:s3cret@localhost:{}/0", redis.port);
    let plain = Redis::start(d);
    let coordinator_flags = flags(
        d,
        &[
            ("--redis-ca", "ca.crt"),
            ("--client-token-file", "client.token"),
            ("--worker-token-file", "worker.token"),
            ("--tls-cert", "server.crt"),
            ("--tls-key", "server.key"),
            ("--tls-client-ca", "ca.crt"),
        ],
        &["--redis-url", &rediss],
    );
    let coordinator_flags: Vec<&str> = coordinator_flags.iter().map(String::as_str).collect();
    let coordinator = Coordinator::start(&plain, d, None, &coordinator_flags);
    let url = format!("https://localhost:{}", coordinator.port);
    let (ca, worker_token) = (path(d, "ca.crt"), path(d, "worker.token"));
    let tls =
        ["--tls-ca", &path(d, "ca.crt"), "--tls-cert", &path(d, "client.crt"), "--tls-key", &path(d, "client.key")];
    // The worker reads the Redis password from a file (a mounted Secret), not from its URL.
    std::fs::write(d.join("redis.password"), "s3cret\n").expect("password");
    let (password_file, bare) = (path(d, "redis.password"), format!("rediss://localhost:{}/0", redis.port));
    let redis_flags = ["--redis-url", bare.as_str(), "--redis-password-file", password_file.as_str()];
    let worker_flags =
        [&tls[..], &["--token-file", worker_token.as_str(), "--redis-ca", ca.as_str()], &redis_flags[..]].concat();
    let _worker = worker(&plain, &url, d, "secure", "tiny", &worker_flags);

    let jobs = |extra: &[&str]| {
        let mut args = strings(&["jobs", "--coordinator", &url]);
        args.extend(strings(extra));
        lorabeam(&args)
    };
    let stderr = |out: &std::process::Output| String::from_utf8_lossy(&out.stderr).to_string();
    let no_token = jobs(&tls);
    assert!(!no_token.status.success() && stderr(&no_token).contains("missing `authorization: Bearer <token>`"));
    let wrong_role = jobs(&[&tls[..], &["--token", WORKER_TOKEN]].concat());
    assert!(stderr(&wrong_role).contains("a worker token cannot call JobService"), "{}", stderr(&wrong_role));
    let bad_token = jobs(&[&tls[..], &["--token", "guess"]].concat());
    assert!(stderr(&bad_token).contains("invalid token"));
    let no_client_cert = jobs(&["--tls-ca", &path(d, "ca.crt"), "--token", CLIENT_TOKEN]);
    assert!(!no_client_cert.status.success(), "mTLS refuses a client without a certificate");

    let data = head(&conformance_dir().join("data/e2e_test_public.jsonl"), 12, d, "twelve.jsonl");
    let output = d.join("out.jsonl");
    let mut args =
        strings(&["submit", "--coordinator", &url, "--model-id", "tiny", "--data", data.to_str().expect("utf-8")]);
    args.extend(strings(&tls));
    args.extend(strings(&[
        "--token-file",
        &path(d, "client.token"),
        "--wait",
        "--output",
        output.to_str().expect("utf-8"),
    ]));
    args.extend(decode_flags("greedy-f64"));
    let out = lorabeam(&args);
    assert!(out.status.success(), "secure submit: {}\n{}", stderr(&out), coordinator.stderr());
    let golden = head(&conformance_dir().join("golden/greedy-f64.jsonl"), 12, d, "golden.jsonl");
    eprintln!("TLS + mTLS + tokens + rediss: {}", compare(&golden, &output, 1.0));

    // A client token cannot report results.
    let denied = report_with_token(&url, d, CLIENT_TOKEN);
    assert_eq!(denied, tonic::Code::PermissionDenied);
    for log in [coordinator.stderr(), std::fs::read_to_string(d.join("worker-secure.log")).unwrap_or_default()] {
        assert!(
            !log.contains(CLIENT_TOKEN) && !log.contains(WORKER_TOKEN) && !log.contains("s3cret"),
            "a secret was logged"
        );
    }
}

/// Opens WorkerService.Report with `token`; the status code it gets.
fn report_with_token(url: &str, dir: &Path, token: &str) -> tonic::Code {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let tls = lorabeam_proto::connect::ClientTls {
            ca: Some(dir.join("ca.crt")),
            cert: Some(dir.join("client.crt")),
            key: Some(dir.join("client.key")),
        };
        let channel = lorabeam_proto::connect::channel(url, &tls, Duration::from_secs(5)).await.expect("connect");
        let bearer = lorabeam_proto::connect::BearerToken::new(Some(token.into())).expect("token");
        let mut client = lorabeam_proto::v1::WorkerServiceClient::with_interceptor(channel, bearer);
        let reports = tokio_stream::iter(Vec::<lorabeam_proto::v1::WorkerReport>::new());
        match client.report(reports).await {
            Ok(_) => tonic::Code::Ok,
            Err(status) => status.code(),
        }
    })
}

#[test]
fn health_stays_open_and_clients_are_limited_to_their_running_jobs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let redis = Redis::start(d);
    let coordinator = Coordinator::start(
        &redis,
        d,
        None,
        &[
            "--client-token",
            CLIENT_TOKEN,
            "--worker-token",
            WORKER_TOKEN,
            "--max-jobs-per-client",
            "1",
            // Declared, so its jobs are taken (and stay running: no worker serves it).
            "--serve-model-ids",
            "nobody-serves-this",
        ],
    );
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let serving = runtime.block_on(async {
        let channel =
            tonic::transport::Endpoint::from_shared(coordinator.url()).expect("url").connect().await.expect("connect");
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        let request = tonic_health::pb::HealthCheckRequest { service: "lorabeam.v1.JobService".into() };
        health.check(request).await.expect("health answers without a token").into_inner().status
    });
    assert_eq!(serving, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);
    let data = head(&conformance_dir().join("data/e2e_test_public.jsonl"), 4, d, "four.jsonl");
    let submit = || {
        let mut args = strings(&["submit", "--coordinator", &coordinator.url(), "--model-id", "nobody-serves-this"]);
        args.extend(strings(&["--token", CLIENT_TOKEN, "--data", data.to_str().expect("utf-8")]));
        lorabeam(&args)
    };
    assert!(submit().status.success(), "the first job is accepted");
    let second = submit();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success() && stderr.contains("already has 1 running job(s)"), "{stderr}");
    let metrics = support::cluster::http_get(coordinator.metrics_port, "/metrics");
    assert!(metrics.contains("lorabeam_limit_rejections_total{limit=\"running_jobs_per_client\"} 1"), "{metrics}");
}
