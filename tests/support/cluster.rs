//! Real processes for the fleet tests: a `redis-server` on a free loopback port, the
//! coordinator on `127.0.0.1:0`, and workers. Every process is killed when its guard drops.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use super::{fixture, tiny_model_args};

/// The workspace's other binaries, built once per test process unless `LORABEAM_BINARIES_BUILT`
/// says they are fresh (scripts/test.sh builds them with the tests, in one cargo invocation).
pub fn binary(name: &str) -> PathBuf {
    static BUILD: Once = Once::new();
    let dir = Path::new(env!("CARGO_BIN_EXE_lorabeam")).parent().expect("target dir").to_path_buf();
    BUILD.call_once(|| {
        if std::env::var_os("LORABEAM_BINARIES_BUILT").is_some() {
            return;
        }
        let release = dir.ends_with("release");
        let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        // The selection `scripts/setup.sh --tests` builds: with the tests in it, the
        // dev-dependencies' features unify as in the build of this test, so everything is fresh
        // (`--bins` alone would resolve other features and rebuild the workspace). Test
        // processes that race here wait on cargo's own lock.
        cargo.args(["build", "--locked", "--workspace", "--bins", "--tests"]);
        if release {
            cargo.arg("--release");
        }
        let status = cargo.current_dir(env!("CARGO_MANIFEST_DIR")).status().expect("cargo runs");
        assert!(status.success(), "building lorabeam-coordinator and lorabeam-worker failed");
    });
    // A bench may compare another build's coordinator (main's, say) with this tree's.
    if name == "lorabeam-coordinator" {
        if let Some(other) = std::env::var_os("LORABEAM_COORDINATOR_BIN") {
            return PathBuf::from(other);
        }
    }
    dir.join(name)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Waits for `check` to hold, polling; panics with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process killed (SIGKILL) on drop, with its stderr kept in a file for diagnosis.
pub struct Process {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Process {
    pub fn spawn(mut command: Command, log: PathBuf) -> Self {
        let file = std::fs::File::create(&log).expect("log file");
        command.stderr(file);
        let child = command.spawn().unwrap_or_else(|e| panic!("starting {command:?}: {e}"));
        Self { child: Some(child), log }
    }

    /// Adopts a child started elsewhere.
    pub fn from_child(child: Child, log: PathBuf) -> Self {
        Self { child: Some(child), log }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Its exit status, once it has exited.
    pub fn try_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// `kill -9`: no chance to clean up.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits up to `timeout` for a clean exit; returns whether it exited 0.
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        let Some(mut child) = self.child.take() else { return false };
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            if start.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct Redis {
    pub port: u16,
    dir: PathBuf,
    process: Process,
}

impl Redis {
    /// A throwaway `redis-server` in `dir`, AOF on (so it can be restarted without loss).
    pub fn start(dir: &Path) -> Self {
        let port = free_port();
        let process = Self::spawn(dir, port);
        let redis = Self { port, dir: dir.to_path_buf(), process };
        redis.wait_ready();
        redis
    }

    fn spawn(dir: &Path, port: u16) -> Process {
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"])
            .args(["--dir", dir.to_str().expect("utf-8")])
            .stdout(Stdio::null());
        Process::spawn(command, dir.join(format!("redis-{}.log", free_port())))
    }

    fn wait_ready(&self) {
        wait_until("redis-server to answer", Duration::from_secs(20), || self.cli(&["PING"]) == "PONG");
    }

    /// Shuts Redis down (flushing its AOF) and starts it again on the same port and files.
    pub fn restart(&mut self) {
        let _ = self.cli(&["SHUTDOWN"]);
        self.process.terminate(Duration::from_secs(10));
        self.process = Self::spawn(&self.dir, self.port);
        self.wait_ready();
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// One `redis-cli` command; its output, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli").args(["-p", &self.port.to_string()]).args(args).output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default()
    }

    pub fn stop(&mut self) {
        self.process.kill();
    }
}

pub struct Coordinator {
    pub port: u16,
    pub metrics_port: u16,
    pub output_dir: PathBuf,
    process: Process,
}

impl Coordinator {
    /// Starts a coordinator; `port` None binds `127.0.0.1:0` and reads the port it printed.
    pub fn start(redis: &Redis, dir: &Path, port: Option<u16>, extra: &[&str]) -> Self {
        Self::start_with_env(redis, dir, port, extra, &[])
    }

    pub fn start_with_env(redis: &Redis, dir: &Path, port: Option<u16>, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let output_dir = dir.join("outputs");
        let listen = format!("127.0.0.1:{}", port.unwrap_or(0));
        let mut command = Command::new(binary("lorabeam-coordinator"));
        command.args(["--listen", &listen, "--redis-url", &redis.url(), "--metrics-listen", "127.0.0.1:0"]);
        // An output directory given in `env` (a bucket, say) replaces the test's folder.
        if !env.iter().any(|(key, _)| *key == "LORABEAM_OUTPUT_DIR") {
            command.args(["--output-dir", output_dir.to_str().expect("utf-8")]);
        }
        command
            .args(extra)
            .env("RUST_LOG", "info")
            // The tests' model id is served before its workers start (and by tests with none);
            // `env` or a `--serve-model-ids` in `extra` overrides it.
            .env("LORABEAM_SERVE_MODEL_IDS", "tiny")
            .envs(env.iter().copied())
            .stdout(Stdio::piped());
        let log = dir.join(format!("coordinator-{}.log", free_port()));
        let mut process = Process::spawn(command, log);
        let stdout = process.child.as_mut().and_then(|c| c.stdout.take()).expect("stdout");
        // It prints its gRPC then its metrics address; read both before the pipe closes.
        let mut reader = BufReader::new(stdout);
        let mut ports = [0u16; 2];
        for port in &mut ports {
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let parsed = line.trim().rsplit(':').next().and_then(|p| p.parse().ok());
            *port = parsed.unwrap_or_else(|| panic!("coordinator did not start: {line}\n{}", process.stderr()));
        }
        Self { port: ports[0], metrics_port: ports[1], output_dir, process }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn kill(&mut self) {
        self.process.kill();
    }

    pub fn stderr(&self) -> String {
        self.process.stderr()
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// SIGTERM, waiting for a clean exit (which flushes its traces).
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        self.process.terminate(timeout)
    }
}

/// `GET path` over plain HTTP/1.1; the body.
pub fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    response.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default()
}

/// A worker for model id `model_id`: the tiny fixture (f64, one thread) or the echo engine.
pub fn worker(redis: &Redis, coordinator_url: &str, dir: &Path, name: &str, model_id: &str, extra: &[&str]) -> Process {
    worker_with_env(redis, coordinator_url, dir, name, model_id, extra, &[])
}

/// The port of a worker's `/metrics`, from the line it prints at start.
pub fn worker_metrics_port(dir: &Path, name: &str) -> u16 {
    let path = dir.join(format!("worker-{name}.out"));
    let mut port = None;
    wait_until("the worker's metrics address", Duration::from_secs(30), || {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        port = text.lines().next().and_then(|l| l.trim().rsplit(':').next()).and_then(|p| p.parse().ok());
        port.is_some()
    });
    port.unwrap_or(0)
}

pub fn worker_with_env(
    redis: &Redis,
    coordinator_url: &str,
    dir: &Path,
    name: &str,
    model_id: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Process {
    let mut command = worker_command(redis, coordinator_url, dir, name, model_id);
    command.envs(env.iter().copied());
    if !extra.contains(&"echo") {
        command.arg("--init_checkpoint").arg(fixture("lora_full.pt")).args(tiny_model_args());
    }
    command.args(extra);
    Process::spawn(command, dir.join(format!("worker-{name}.log")))
}

/// A worker for `model_id` that holds the tiny fixture's bare base once (f64, one thread) and
/// serves the adapters under `adapter_dir` by name (loralib alpha 32, the fixture's).
pub fn adapter_worker(
    redis: &Redis,
    coordinator_url: &str,
    dir: &Path,
    name: &str,
    model_id: &str,
    adapter_dir: &Path,
    extra: &[&str],
) -> Process {
    let adapter_dir = adapter_dir.to_str().expect("utf-8");
    adapter_worker_with(redis, coordinator_url, dir, (name, model_id), adapter_dir, extra, &[])
}

/// [`adapter_worker`] with `--adapter-dir` given as written (a URL, say) and `env` set.
pub fn adapter_worker_with(
    redis: &Redis,
    coordinator_url: &str,
    dir: &Path,
    (name, model_id): (&str, &str),
    adapter_dir: &str,
    extra: &[&str],
    env: &[(String, String)],
) -> Process {
    let mut command = worker_command(redis, coordinator_url, dir, name, model_id);
    command.arg("--base_checkpoint").arg(fixture("base_pytorch_model.bin"));
    command.arg("--model_config").arg(fixture("config.json")).args(["--lora_alpha", "32"]);
    command.args(["--adapter-dir", adapter_dir]).args(extra).envs(env.iter().map(|(k, v)| (k, v)));
    Process::spawn(command, dir.join(format!("worker-{name}.log")))
}

/// What every test worker runs with: loopback Redis and coordinator, the CPU, f64, one thread.
fn worker_command(redis: &Redis, coordinator_url: &str, dir: &Path, name: &str, model_id: &str) -> Command {
    let stdout = std::fs::File::create(dir.join(format!("worker-{name}.out"))).expect("stdout file");
    let mut command = Command::new(binary("lorabeam-worker"));
    command
        .args(["--redis-url", &redis.url(), "--coordinator", coordinator_url, "--model-id", model_id])
        .args(["--worker-name", name, "--device", "cpu", "--threads", "1", "--dtype", "f64"])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stdout(stdout);
    command
}
