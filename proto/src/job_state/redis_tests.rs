//! Every transition of the job state machine, legal and illegal, run by its Lua scripts against
//! a real `redis-server` on a free loopback port (started here, killed on drop).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server runs (apt-get install redis-server)");
        let server = Self { child, port };
        let started = Instant::now();
        while server.connection().is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "redis-server did not answer");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn connection(&self) -> redis::RedisResult<redis::Connection> {
        let mut con = redis::Client::open(format!("redis://127.0.0.1:{}", self.port))?.get_connection()?;
        redis::cmd("PING").query::<String>(&mut con)?;
        Ok(con)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const JOB: &str = "test:job:j1";
const OPEN: &str = "test:jobs:open";
const ENDED: &str = "test:jobs:ended";
const STATES: &str = "test:jobs:states";

fn set_job(con: &mut redis::Connection, fields: &[(&str, &str)]) {
    let _: () = redis::cmd("DEL").arg(JOB).arg(OPEN).arg(ENDED).arg(STATES).query(con).expect("del");
    if !fields.is_empty() {
        let _: () = redis::cmd("HSET").arg(JOB).arg(fields).query(con).expect("hset");
    }
}

fn field(con: &mut redis::Connection, name: &str) -> Option<String> {
    redis::cmd("HGET").arg(JOB).arg(name).query(con).expect("hget")
}

fn transition(con: &mut redis::Connection, to: &str, token: &str, fields: &[&str]) -> (i64, String) {
    let mut call = TRANSITION.prepare_invoke();
    call.key(JOB).key(OPEN).key(ENDED).key(STATES).arg(to).arg(token).arg("j1").arg(9000).arg(fields);
    call.invoke(con).expect("transition runs")
}

fn count(con: &mut redis::Connection, state: &str) -> i64 {
    let n: Option<i64> = redis::cmd("HGET").arg(STATES).arg(state).query(con).expect("hget");
    n.unwrap_or(0)
}

#[test]
fn every_move_the_table_allows_happens_and_every_other_is_refused_leaving_the_state() {
    let redis = RedisServer::start();
    let mut con = redis.connection().expect("connect");
    for from in JobPhase::ALL {
        for to in JobPhase::ALL {
            set_job(&mut con, &[(f::STATE, from.as_str()), (f::FINALIZER, "me")]);
            let (moved, seen) = transition(&mut con, to.as_str(), "me", &[f::ERROR, "why"]);
            let state = field(&mut con, f::STATE);
            if from.may_become(to) {
                assert_eq!((moved, seen.as_str()), (1, from.as_str()), "{from} -> {to}");
                assert_eq!(state.as_deref(), Some(to.as_str()), "{from} -> {to}");
                assert_eq!(field(&mut con, f::ERROR).as_deref(), Some("why"), "fields are set with the move");
            } else {
                assert_eq!((moved, seen.as_str()), (0, from.as_str()), "{from} -> {to} must be refused");
                assert_eq!(state.as_deref(), Some(from.as_str()), "{from} -> {to} changed the state");
                assert_eq!(field(&mut con, f::ERROR), None, "a refused move writes nothing");
            }
        }
    }
}

#[test]
fn a_terminal_state_is_never_overwritten() {
    let redis = RedisServer::start();
    let mut con = redis.connection().expect("connect");
    for terminal in JobPhase::ALL.into_iter().filter(|p| p.is_terminal()) {
        for to in JobPhase::ALL {
            set_job(&mut con, &[(f::STATE, terminal.as_str())]);
            assert_eq!(transition(&mut con, to.as_str(), "", &[]).0, 0);
            assert_eq!(field(&mut con, f::STATE).as_deref(), Some(terminal.as_str()));
        }
    }
}

#[test]
fn only_the_finalizer_ends_a_finalizing_job_but_anyone_may_cancel_it() {
    let redis = RedisServer::start();
    let mut con = redis.connection().expect("connect");
    set_job(&mut con, &[(f::STATE, "finalizing"), (f::FINALIZER, "a")]);
    assert_eq!(transition(&mut con, "completed", "b", &[]), (-1, "finalizing".into()));
    assert_eq!(transition(&mut con, "completed", "", &[]), (-1, "finalizing".into()));
    assert_eq!(field(&mut con, f::STATE).as_deref(), Some("finalizing"));
    assert_eq!(transition(&mut con, "cancelled", "", &[]), (1, "finalizing".into()));
    assert_eq!(transition(&mut con, "completed", "a", &[]), (0, "cancelled".into()), "the cancel won");
}

#[test]
fn a_job_that_does_not_exist_moves_nowhere() {
    let redis = RedisServer::start();
    let mut con = redis.connection().expect("connect");
    set_job(&mut con, &[]);
    assert_eq!(transition(&mut con, "cancelled", "", &[]), (0, String::new()));
    let exists: bool = redis::cmd("EXISTS").arg(JOB).query(&mut con).expect("exists");
    assert!(!exists, "a refused move creates no job");
}

fn claim(con: &mut redis::Connection, token: &str, now: u64, lease: u64) -> i64 {
    CLAIM_FINALIZATION.key(JOB).key(STATES).arg(token).arg(now).arg(lease).invoke(con).expect("claim runs")
}

fn renew(con: &mut redis::Connection, token: &str, now: u64, lease: u64) -> i64 {
    RENEW_FINALIZATION.key(JOB).arg(token).arg(now).arg(lease).invoke(con).expect("renew runs")
}

#[test]
fn finalization_is_claimed_once_a_running_job_is_complete_and_by_one_finalizer() {
    let redis = RedisServer::start();
    let mut con = redis.connection().expect("connect");
    set_job(&mut con, &[(f::STATE, "running"), (f::ITEMS, "3"), (f::ITEMS_DONE, "2")]);
    assert_eq!(claim(&mut con, "a", 1000, 500), 0, "an item has no outcome yet");
    assert_eq!(field(&mut con, f::STATE).as_deref(), Some("running"));
    let _: () = redis::cmd("HSET").arg(JOB).arg(f::ITEMS_DONE).arg("3").query(&mut con).expect("hset");
    assert_eq!(claim(&mut con, "a", 1000, 500), 1);
    assert_eq!(field(&mut con, f::STATE).as_deref(), Some("finalizing"));
    assert_eq!(field(&mut con, f::FINALIZER).as_deref(), Some("a"));
    assert_eq!(field(&mut con, f::FINALIZER_UNTIL).as_deref(), Some("1500"));
    assert_eq!(claim(&mut con, "b", 1499, 500), 0, "a's lease still holds");
    assert_eq!(claim(&mut con, "a", 1499, 500), 0, "a claim is not a renewal");
}

#[test]
fn a_finalizer_whose_lease_ran_out_is_replaced_and_can_no_longer_renew() {
    let redis = RedisServer::start();
    let mut con = redis.connection().expect("connect");
    set_job(&mut con, &[(f::STATE, "finalizing"), (f::FINALIZER, "a"), (f::FINALIZER_UNTIL, "1500")]);
    assert_eq!(renew(&mut con, "a", 1400, 500), 1);
    assert_eq!(field(&mut con, f::FINALIZER_UNTIL).as_deref(), Some("1900"));
    assert_eq!(renew(&mut con, "b", 1400, 500), 0, "b does not hold it");
    assert_eq!(claim(&mut con, "b", 1901, 500), 2, "a's lease ran out: b takes over");
    assert_eq!(renew(&mut con, "a", 1902, 500), 0, "a learns it lost the job");
    assert_eq!(transition(&mut con, "completed", "a", &[]).0, -1, "and cannot end it");
    assert_eq!(transition(&mut con, "completed", "b", &[]).0, 1);
}

#[test]
fn ended_or_cancelled_jobs_are_never_claimed_nor_renewed() {
    let redis = RedisServer::start();
    let mut con = redis.connection().expect("connect");
    for state in JobPhase::ALL.into_iter().filter(|p| p.is_terminal()) {
        let fields = [(f::STATE, state.as_str()), (f::FINALIZER, "a"), (f::ITEMS, "1"), (f::ITEMS_DONE, "1")];
        set_job(&mut con, &fields);
        assert_eq!(claim(&mut con, "a", 0, 500), 0, "{state}");
        assert_eq!(renew(&mut con, "a", 0, 500), 0, "{state}");
        assert_eq!(field(&mut con, f::STATE).as_deref(), Some(state.as_str()));
    }
    set_job(&mut con, &[]);
    assert_eq!(claim(&mut con, "a", 0, 500), 0, "no job");
}

#[test]
fn the_indexes_follow_every_move() {
    let redis = RedisServer::start();
    let mut con = redis.connection().expect("connect");
    set_job(&mut con, &[(f::STATE, "running"), (f::ITEMS, "1"), (f::ITEMS_DONE, "1")]);
    let _: () = redis::cmd("ZADD").arg(OPEN).arg(1).arg("j1").query(&mut con).expect("zadd");
    let _: () = redis::cmd("HSET").arg(STATES).arg("running").arg(1).query(&mut con).expect("hset");
    assert_eq!(claim(&mut con, "a", 0, 500), 1);
    assert_eq!((count(&mut con, "running"), count(&mut con, "finalizing")), (0, 1));
    assert_eq!(transition(&mut con, "completed", "a", &[]).0, 1);
    assert_eq!((count(&mut con, "finalizing"), count(&mut con, "completed")), (0, 1));
    let open: Vec<String> = redis::cmd("ZRANGE").arg(OPEN).arg(0).arg(-1).query(&mut con).expect("zrange");
    assert!(open.is_empty(), "an ended job leaves the open set");
    let ended: Vec<(String, i64)> =
        redis::cmd("ZRANGE").arg(ENDED).arg(0).arg(-1).arg("WITHSCORES").query(&mut con).expect("zrange");
    assert_eq!(ended, vec![("completed:j1".to_string(), 9000)], "with its state and when it expires");
    assert_eq!(transition(&mut con, "cancelled", "", &[]).0, 0);
    assert_eq!(count(&mut con, "completed"), 1, "a refused move counts nothing");
}

#[test]
fn jobs_kept_from_before_the_indexes_are_indexed_once() {
    let redis = RedisServer::start();
    let mut con = redis.connection().expect("connect");
    let (jobs, marker) = ("test:jobs", "test:jobs:indexed");
    for (id, state) in [("j1", "running"), ("j2", "completed"), ("j3", "finalizing")] {
        let _: () =
            redis::cmd("HSET").arg(format!("test:job:{id}")).arg(f::STATE).arg(state).query(&mut con).expect("hset");
    }
    let _: () = redis::cmd("PEXPIRE").arg("test:job:j2").arg(5000).query(&mut con).expect("pexpire");
    let _: () = redis::cmd("ZADD")
        .arg(jobs)
        .arg(1)
        .arg("j1")
        .arg(2)
        .arg("j2")
        .arg(3)
        .arg("j3")
        .arg(4)
        .arg("gone")
        .query(&mut con)
        .expect("zadd");
    let index = |con: &mut redis::Connection| -> i64 {
        let mut call = INDEX_JOBS.prepare_invoke();
        call.key(jobs).key(OPEN).key(ENDED).key(STATES).key(marker).arg("test:job:").arg(1000);
        call.invoke(con).expect("index runs")
    };
    assert_eq!(index(&mut con), 3);
    let open: Vec<String> = redis::cmd("ZRANGE").arg(OPEN).arg(0).arg(-1).query(&mut con).expect("zrange");
    assert_eq!(open, vec!["j1".to_string(), "j3".to_string()]);
    let ended: Vec<(String, i64)> =
        redis::cmd("ZRANGE").arg(ENDED).arg(0).arg(-1).arg("WITHSCORES").query(&mut con).expect("zrange");
    assert_eq!(ended.len(), 1);
    assert!(ended[0].0 == "completed:j2" && ended[0].1 > 1000 && ended[0].1 <= 6000, "{ended:?}");
    assert_eq!((count(&mut con, "running"), count(&mut con, "completed"), count(&mut con, "finalizing")), (1, 1, 1));
    let kept: Vec<String> = redis::cmd("ZRANGE").arg(jobs).arg(0).arg(-1).query(&mut con).expect("zrange");
    assert_eq!(kept, vec!["j1", "j2", "j3"], "a job whose hash expired leaves the jobs set");
    assert_eq!(index(&mut con), -1, "once");
    let _: () = redis::cmd("DEL").arg(marker).arg(jobs).query(&mut con).expect("del");
    assert_eq!(index(&mut con), 0, "nothing to index");
    let marked: bool = redis::cmd("EXISTS").arg(marker).query(&mut con).expect("exists");
    assert!(!marked, "an empty Redis keeps no key of lorabeam's");
}
