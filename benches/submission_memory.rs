//! The coordinator's memory under abandoned submissions: 50 SubmitJob streams from one client,
//! each sending a spec and 4 MiB of JSONL and then nothing, never finishing. Prints the
//! coordinator's RSS before, while they are held, its peak, and after the idle timeout, with how
//! many streams are still open. `LORABEAM_COORDINATOR_BIN` runs another coordinator binary (for
//! a before/after comparison); `LORABEAM_RSS_FLAGS` adds coordinator flags.
//!
//! cargo bench --bench submission_memory

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::cluster::{Coordinator, Redis};
use support::submissions::{chunk, small, spec};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const STREAMS: usize = 50;
const BYTES: usize = 4 << 20;

fn rss_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    kib / 1024.0
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = Redis::start(dir.path());
    let flags = std::env::var("LORABEAM_RSS_FLAGS").unwrap_or_default();
    let flags: Vec<&str> = flags.split_whitespace().collect();
    let coordinator = Coordinator::start(&redis, dir.path(), None, &flags);
    let pid = coordinator.pid();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let binary = std::env::var("LORABEAM_COORDINATOR_BIN").unwrap_or_else(|_| "this tree's".into());
    println!(
        "submission memory: {STREAMS} streams x {} MiB, never finished; coordinator {binary} {flags:?}",
        BYTES >> 20
    );
    let baseline = rss_mib(pid, "VmRSS:");
    runtime.block_on(async {
        let client = lorabeam_proto::v1::JobServiceClient::connect(coordinator.url())
            .await
            .expect("connect")
            .max_encoding_message_size(64 << 20);
        let mut senders = Vec::new();
        let mut answers = Vec::new();
        for _ in 0..STREAMS {
            let (tx, rx) = mpsc::channel(4);
            tx.send(spec(small())).await.expect("queued");
            tx.send(chunk(&vec![b' '; BYTES])).await.expect("queued");
            senders.push(tx);
            let mut client = client.clone();
            answers.push(tokio::spawn(async move { client.submit_job(ReceiverStream::new(rx)).await }));
        }
        let start = Instant::now();
        let open = |answers: &[tokio::task::JoinHandle<_>]| answers.iter().filter(|a| !a.is_finished()).count();
        tokio::time::sleep(Duration::from_secs(5)).await;
        let held = rss_mib(pid, "VmRSS:");
        let open_5 = open(&answers);
        tokio::time::sleep(Duration::from_secs(22)).await;
        let open_27 = open(&answers);
        let at_27 = rss_mib(pid, "VmRSS:");
        tokio::time::sleep(Duration::from_secs(13)).await;
        let open_40 = open(&answers);
        let at_40 = rss_mib(pid, "VmRSS:");
        let mut codes = std::collections::BTreeMap::new();
        for answer in answers.into_iter().filter(|a| a.is_finished()) {
            let code = match answer.await.expect("task") {
                Ok(_) => "OK".to_string(),
                Err(status) => format!("{:?}", status.code()),
            };
            *codes.entry(code).or_insert(0) += 1;
        }
        println!("| moment | coordinator RSS | streams open |");
        println!("|---|---|---|");
        println!("| before | {baseline:.1} MiB | 0 |");
        println!("| +5 s | {held:.1} MiB | {open_5} |");
        println!("| +27 s | {at_27:.1} MiB | {open_27} |");
        println!("| +40 s | {at_40:.1} MiB | {open_40} |");
        println!(
            "peak RSS (VmHWM) {:.1} MiB after {:.0} s; answers so far: {codes:?}",
            rss_mib(pid, "VmHWM:"),
            start.elapsed().as_secs_f64()
        );
        drop(senders);
    });
}
