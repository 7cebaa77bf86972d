//! A job's life as a state machine, and the Lua scripts that are the only writers of its state:
//!
//! ~~~text
//!   queued ──► running ──► finalizing ──► completed | completed_with_failures | failed
//!     │           │            │  ▲
//!     │           │            └──┘ (a finalizer whose lease ran out is replaced)
//!     └───────────┴────────────┴────► cancelled
//! ~~~
//!
//! - `queued`: its shards wait for workers; its first stored result makes it `running`.
//! - `running`: shards are decoding; results are stored only in these two states.
//! - `finalizing`: every item has an outcome; one finalizer, holding a lease (a token and an
//!   expiry in the job hash), writes the output and scores it. A finalizer that dies is
//!   replaced once its lease runs out; its output and scores are written by its successor.
//! - terminal states are never left nor overwritten.
//! - `cancelled` wins from any non-terminal state, also during finalization: the finalizer's
//!   own move to a terminal state is then refused, and it withdraws its output.
//!
//! Every change is one script that checks the state it starts from (compare-and-set), so two
//! coordinators, or a worker's last result racing a cancel, cannot both win.

use std::sync::LazyLock;

use crate::queue::job_fields as f;

/// The states of a job, as stored in its hash's `state` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobPhase {
    Queued,
    Running,
    Finalizing,
    Completed,
    CompletedWithFailures,
    Failed,
    Cancelled,
}

impl JobPhase {
    pub const ALL: [JobPhase; 7] = [
        Self::Queued,
        Self::Running,
        Self::Finalizing,
        Self::Completed,
        Self::CompletedWithFailures,
        Self::Failed,
        Self::Cancelled,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Finalizing => "finalizing",
            Self::Completed => "completed",
            Self::CompletedWithFailures => "completed_with_failures",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|phase| phase.as_str() == text)
    }

    /// Whether results are stored in this state (queued or running): workers run its shards.
    pub fn takes_results(self) -> bool {
        matches!(self, Self::Queued | Self::Running)
    }

    /// The phase a stored state name stands for, and whether it takes results (`false` for a
    /// job that is gone).
    pub fn name_takes_results(state: Option<&str>) -> bool {
        state.and_then(Self::parse).is_some_and(Self::takes_results)
    }

    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Queued | Self::Running | Self::Finalizing)
    }

    /// Whether [`TRANSITION`] moves a job from `self` to `to` (a finalizer's takeover of a
    /// finalizing job is [`CLAIM_FINALIZATION`]'s, not a transition).
    pub fn may_become(self, to: JobPhase) -> bool {
        match (self, to) {
            (Self::Queued, Self::Running | Self::Cancelled) => true,
            (Self::Running, Self::Finalizing | Self::Cancelled) => true,
            (Self::Finalizing, to) => to.is_terminal(),
            _ => false,
        }
    }
}

impl std::fmt::Display for JobPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The transition table as a Lua table literal: `{running = {finalizing = true, ...}, ...}`.
fn lua_table() -> String {
    let rows: Vec<String> = JobPhase::ALL
        .iter()
        .map(|from| {
            let to: Vec<String> = JobPhase::ALL
                .iter()
                .filter(|to| from.may_become(**to))
                .map(|to| format!("{} = true", to.as_str()))
                .collect();
            format!("{} = {{{}}}", from.as_str(), to.join(", "))
        })
        .collect();
    format!("{{{}}}", rows.join(", "))
}

/// The terminal states as a Lua set literal.
fn lua_terminal() -> String {
    let names: Vec<String> =
        JobPhase::ALL.iter().filter(|p| p.is_terminal()).map(|p| format!("{} = true", p.as_str())).collect();
    format!("{{{}}}", names.join(", "))
}

/// Moves a job to another state if the table allows it from the state it is in, and sets the
/// given fields in the same step; the jobs' indexes follow (the count per state, and an ended
/// job leaves the open set for the ended one). Leaving `finalizing` for a terminal state other
/// than `cancelled` also needs the finalizer's token. KEYS: job hash, open jobs, ended jobs,
/// state counts (see `Keys`). ARGV: the new state, the finalizer token (`''` when not
/// finalizing), the job id, when its retention runs out if the move ends it (ms), then
/// field/value pairs. Returns `{1, from}` when moved, `{0, current}` when the table refuses
/// (`current` is `''` for a job that does not exist), `{-1, current}` when the token is not the
/// finalizer's.
pub static TRANSITION: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        r"
local allowed = {table}
local terminal = {terminal}
local from = redis.call('HGET', KEYS[1], '{state}')
if not from then return {{0, ''}} end
local to = ARGV[1]
if not (allowed[from] and allowed[from][to]) then return {{0, from}} end
if from == '{finalizing}' and to ~= '{cancelled}' and redis.call('HGET', KEYS[1], '{finalizer}') ~= ARGV[2] then
  return {{-1, from}}
end
redis.call('HSET', KEYS[1], '{state}', to)
for i = 5, #ARGV - 1, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HINCRBY', KEYS[4], from, -1)
redis.call('HINCRBY', KEYS[4], to, 1)
if terminal[to] then
  redis.call('ZREM', KEYS[2], ARGV[3])
  redis.call('ZADD', KEYS[3], ARGV[4], to .. ':' .. ARGV[3])
end
return {{1, from}}
",
        table = lua_table(),
        terminal = lua_terminal(),
        state = f::STATE,
        finalizing = JobPhase::Finalizing.as_str(),
        cancelled = JobPhase::Cancelled.as_str(),
        finalizer = f::FINALIZER,
    ))
});

/// Builds the jobs' indexes (open set, ended set, state counts) from every retained job, once:
/// for a Redis that holds jobs from before they existed. Jobs whose hash expired leave the jobs
/// set. The mark is set here, and by the first job created ([`crate::queue_scripts::CREATE_JOB`]),
/// so an empty Redis holds no key of lorabeam's. KEYS: jobs set, open jobs, ended jobs, state
/// counts, the indexed mark. ARGV: the job-hash key prefix, now (ms). Returns the jobs indexed,
/// or -1 when the mark was set.
pub static INDEX_JOBS: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        r"
if redis.call('EXISTS', KEYS[5]) == 1 then return -1 end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local terminal = {terminal}
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
local members = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local indexed = 0
for i = 1, #members, 2 do
  local key = ARGV[1] .. members[i]
  local state = redis.call('HGET', key, '{state}')
  if not state then
    redis.call('ZREM', KEYS[1], members[i])
  else
    redis.call('HINCRBY', KEYS[4], state, 1)
    if terminal[state] then
      local ttl = redis.call('PTTL', key)
      if ttl < 0 then ttl = 0 end
      redis.call('ZADD', KEYS[3], tonumber(ARGV[2]) + ttl, state .. ':' .. members[i])
    else
      redis.call('ZADD', KEYS[2], members[i + 1], members[i])
    end
    indexed = indexed + 1
  end
end
redis.call('SET', KEYS[5], '1')
return indexed
",
        terminal = lua_terminal(),
        state = f::STATE,
    ))
});

/// Claims a job's finalization: a running job whose every item has an outcome becomes
/// finalizing under this token, and so does a finalizing one whose finalizer's lease ran out
/// (it died). KEYS: job hash, state counts. ARGV: token, now (ms), lease (ms). Returns 1 when a
/// running job was claimed, 2 when a dead finalizer's job was taken over, 0 otherwise.
pub static CLAIM_FINALIZATION: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        r"
local state = redis.call('HGET', KEYS[1], '{state}')
local now = tonumber(ARGV[2])
if state == '{running}' then
  local done = tonumber(redis.call('HGET', KEYS[1], '{items_done}') or '0')
  local items = tonumber(redis.call('HGET', KEYS[1], '{items}') or '-1')
  if done < items then return 0 end
elseif state == '{finalizing}' then
  if tonumber(redis.call('HGET', KEYS[1], '{until}') or '0') > now then return 0 end
else
  return 0
end
redis.call('HSET', KEYS[1], '{state}', '{finalizing}', '{finalizer}', ARGV[1], '{until}', now + tonumber(ARGV[3]))
if state == '{running}' then
  redis.call('HINCRBY', KEYS[2], '{running}', -1)
  redis.call('HINCRBY', KEYS[2], '{finalizing}', 1)
  return 1
end
return 2
",
        state = f::STATE,
        running = JobPhase::Running.as_str(),
        finalizing = JobPhase::Finalizing.as_str(),
        items_done = f::ITEMS_DONE,
        items = f::ITEMS,
        finalizer = f::FINALIZER,
        until = f::FINALIZER_UNTIL,
    ))
});

/// Extends a finalizer's lease while the job is still finalizing under its token. KEYS: job
/// hash. ARGV: token, now (ms), lease (ms). Returns 1 when renewed, 0 when the job was
/// cancelled or taken over (the finalizer must stop).
pub static RENEW_FINALIZATION: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        r"
if redis.call('HGET', KEYS[1], '{state}') ~= '{finalizing}' then return 0 end
if redis.call('HGET', KEYS[1], '{finalizer}') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], '{until}', tonumber(ARGV[2]) + tonumber(ARGV[3]))
return 1
",
        state = f::STATE,
        finalizing = JobPhase::Finalizing.as_str(),
        finalizer = f::FINALIZER,
        until = f::FINALIZER_UNTIL,
    ))
});

#[cfg(test)]
mod redis_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_only_two_states_are_not_terminal() {
        for phase in JobPhase::ALL {
            assert_eq!(JobPhase::parse(phase.as_str()), Some(phase));
        }
        assert_eq!(JobPhase::parse("pending"), None);
        let open: Vec<JobPhase> = JobPhase::ALL.into_iter().filter(|p| !p.is_terminal()).collect();
        assert_eq!(open, vec![JobPhase::Queued, JobPhase::Running, JobPhase::Finalizing]);
    }

    #[test]
    fn the_table_allows_exactly_the_documented_moves() {
        use JobPhase::*;
        let allowed: Vec<(JobPhase, JobPhase)> = JobPhase::ALL
            .into_iter()
            .flat_map(|from| JobPhase::ALL.into_iter().map(move |to| (from, to)))
            .filter(|(from, to)| from.may_become(*to))
            .collect();
        let expected = vec![
            (Queued, Running),
            (Queued, Cancelled),
            (Running, Finalizing),
            (Running, Cancelled),
            (Finalizing, Completed),
            (Finalizing, CompletedWithFailures),
            (Finalizing, Failed),
            (Finalizing, Cancelled),
        ];
        assert_eq!(allowed, expected);
        assert!(lua_table().starts_with("{queued = {running = true, cancelled = true}, running = {finalizing = true, cancelled = true}, finalizing = {completed"));
    }
}
