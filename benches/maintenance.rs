//! What a coordinator's maintenance loop and a `/metrics` scrape cost with many jobs kept: a
//! Redis holding `LORABEAM_BENCH_RETAINED` finished jobs (default 10,000, written straight into
//! Redis) and one running job (submitted, with no worker). Prints, per coordinator, the Redis
//! calls per second while it is idle (its maintenance pass runs every 5 s), the Redis calls per
//! scrape and the scrape's median and worst latency over 20 scrapes.
//!
//! Set `LORABEAM_COORDINATOR_BIN` to another build's coordinator (main before the jobs'
//! indexes, say) to measure it side by side: each runs on a fresh Redis with the same jobs.
//!
//! cargo bench --bench maintenance

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::cluster::{http_get, Coordinator, Redis};
use support::submissions::{chunk, end_of, small, spec, GOOD};

/// Writes `n` completed jobs (hash, plan, results) into Redis in one script.
fn retain_jobs(redis: &Redis, n: usize) {
    let script = r"
for i = 1, tonumber(ARGV[1]) do
  local id = string.format('job-%016x', i)
  redis.call('HSET', 'lorabeam:job:' .. id, 'state', 'completed', 'records', '100', 'records_done', '100',
    'items', '100', 'items_done', '100', 'shards', '1', 'created_ms', tostring(i), 'finished_ms', tostring(i))
  redis.call('EXPIRE', 'lorabeam:job:' .. id, 604800)
  redis.call('ZADD', 'lorabeam:jobs', i, id)
end
return 1";
    assert_eq!(redis.cli(&["EVAL", script, "0", &n.to_string()]), "1");
}

/// Every command Redis has run so far.
fn redis_calls(redis: &Redis) -> u64 {
    redis
        .cli(&["INFO", "commandstats"])
        .lines()
        .filter_map(|l| l.split_once("calls=").and_then(|(_, rest)| rest.split(',').next()?.parse::<u64>().ok()))
        .sum()
}

struct Measured {
    idle_calls_per_s: f64,
    calls_per_scrape: f64,
    scrape_median_ms: f64,
    scrape_max_ms: f64,
}

fn measure(bin: Option<&Path>, retained: usize) -> Measured {
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = Redis::start(dir.path());
    retain_jobs(&redis, retained);
    // The test support starts `LORABEAM_COORDINATOR_BIN` when set, else this tree's.
    match bin {
        Some(bin) => std::env::set_var("LORABEAM_COORDINATOR_BIN", bin),
        None => std::env::remove_var("LORABEAM_COORDINATOR_BIN"),
    }
    let coordinator = Coordinator::start(&redis, dir.path(), None, &[]);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let mut client = lorabeam_proto::v1::JobServiceClient::connect(coordinator.url()).await.expect("connect");
        let messages = vec![spec(small()), chunk(GOOD.as_bytes()), end_of(GOOD.as_bytes())];
        client.submit_job(tokio_stream::iter(messages)).await.expect("accepted");
    });
    // Let start-up work settle, then count what the idle loop costs over three passes.
    std::thread::sleep(Duration::from_secs(6));
    let before = redis_calls(&redis);
    let window = Duration::from_secs(15);
    std::thread::sleep(window);
    let idle_calls_per_s = (redis_calls(&redis) - before) as f64 / window.as_secs_f64();
    let mut times = Vec::new();
    let before = redis_calls(&redis);
    for _ in 0..20 {
        let started = Instant::now();
        let page = http_get(coordinator.metrics_port, "/metrics");
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        assert!(page.contains("lorabeam_jobs{state=\"completed\"}"), "{page}");
    }
    let calls_per_scrape = (redis_calls(&redis) - before) as f64 / 20.0;
    times.sort_by(f64::total_cmp);
    Measured { idle_calls_per_s, calls_per_scrape, scrape_median_ms: times[10], scrape_max_ms: times[19] }
}

fn main() {
    let retained: usize = std::env::var("LORABEAM_BENCH_RETAINED").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let baseline: Option<PathBuf> = std::env::var_os("LORABEAM_COORDINATOR_BIN").map(PathBuf::from);
    std::env::remove_var("LORABEAM_COORDINATOR_BIN");
    println!("{retained} finished jobs kept and 1 running, no worker; 20 scrapes");
    println!("| coordinator | Redis calls/s idle (maintenance) | Redis calls per scrape | scrape median (ms) | scrape worst (ms) |");
    println!("|---|---|---|---|---|");
    let mut runs: Vec<(&str, Option<&Path>)> = Vec::new();
    if let Some(baseline) = &baseline {
        runs.push(("baseline", Some(baseline.as_path())));
    }
    runs.push(("this tree", None));
    for (name, bin) in runs {
        let m = measure(bin, retained);
        println!(
            "| {name} | {:.0} | {:.0} | {:.1} | {:.1} |",
            m.idle_calls_per_s, m.calls_per_scrape, m.scrape_median_ms, m.scrape_max_ms
        );
    }
}
