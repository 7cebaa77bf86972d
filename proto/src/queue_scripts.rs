//! The Lua scripts of the queue schema, run atomically inside Redis. Job-hash field names and
//! state values come from [`job_fields`] and [`job_states`], so the scripts and the Rust code
//! cannot drift apart; each script is built (and hashed) once per process.

use std::sync::LazyLock;

use crate::queue::{job_fields as f, job_states};

/// Stores a batch of outcomes for one job, each only if its item has none yet, and bumps the
/// counters for the new ones. A job that is no longer running takes nothing, and neither does
/// a batch with an outcome of a shard whose queue entry is not pending for the reporting
/// consumer: the lease is checked in the same atomic step as the writes, so a lease that
/// expired and went to another worker cannot be beaten. Every argument is checked before the
/// first write, so a bad one (a count `HINCRBY` would refuse half-way) changes nothing: a Lua
/// error after a write would leave the write in place.
/// A queued job's first stored outcome makes it running (counted in the state counts).
/// KEYS: job hash, results, failed, the model's stream, state counts. ARGV: group, consumer, the number `n` of
/// entries, the `n` entry ids of the batch's shards, then 5 per outcome: kind (r|f), item,
/// value, records, tokens. Returns {added, items_done, items, records_added, tokens_added},
/// {-1, 0, 0, 0, 0} when the job is not running, {-2, i, 0, 0, 0} when outcome `i` (0-based)
/// has a bad argument, or {-3, k, 0, 0, 0} when entry `k` is not pending for the consumer.
pub static STORE_OUTCOMES: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        r"
local state = redis.call('HGET', KEYS[1], '{state}')
if state ~= '{running}' and state ~= '{queued}' then return {{-1, 0, 0, 0, 0}} end
local function count(text)
  local n = tonumber(text)
  return n ~= nil and n >= 0 and n < 2^50 and n == math.floor(n)
end
if not count(ARGV[3]) then return {{-2, 0, 0, 0, 0}} end
local first = 4 + tonumber(ARGV[3])
for k = 4, first - 1 do
  local p = redis.call('XPENDING', KEYS[4], ARGV[1], ARGV[k], ARGV[k], 1)
  if #p == 0 or p[1][2] ~= ARGV[2] then return {{-3, k - 4, 0, 0, 0}} end
end
if (#ARGV - first + 1) % 5 ~= 0 then return {{-2, 0, 0, 0, 0}} end
for i = first, #ARGV, 5 do
  local kind = ARGV[i]
  if (kind ~= 'r' and kind ~= 'f') or not count(ARGV[i + 1]) or not count(ARGV[i + 3]) or not count(ARGV[i + 4]) then
    return {{-2, (i - first) / 5, 0, 0, 0}}
  end
end
if state == '{queued}' then
  redis.call('HSET', KEYS[1], '{state}', '{running}')
  redis.call('HINCRBY', KEYS[5], '{queued}', -1)
  redis.call('HINCRBY', KEYS[5], '{running}', 1)
end
local added, records, tokens = 0, 0, 0
for i = first, #ARGV, 5 do
  local item = ARGV[i + 1]
  if redis.call('HEXISTS', KEYS[2], item) == 0 and redis.call('HEXISTS', KEYS[3], item) == 0 then
    if ARGV[i] == 'r' then
      redis.call('HSET', KEYS[2], item, ARGV[i + 2])
      redis.call('HINCRBY', KEYS[1], '{generated_tokens}', ARGV[i + 4])
      tokens = tokens + tonumber(ARGV[i + 4])
    else
      redis.call('HSET', KEYS[3], item, ARGV[i + 2])
    end
    redis.call('HINCRBY', KEYS[1], '{records_done}', ARGV[i + 3])
    records = records + tonumber(ARGV[i + 3])
    redis.call('HINCRBY', KEYS[1], '{items_done}', 1)
    added = added + 1
  end
end
local done = tonumber(redis.call('HGET', KEYS[1], '{items_done}'))
return {{added, done, tonumber(redis.call('HGET', KEYS[1], '{items}')), records, tokens}}
",
        state = f::STATE,
        running = job_states::RUNNING,
        queued = job_states::QUEUED,
        generated_tokens = f::GENERATED_TOKENS,
        records_done = f::RECORDS_DONE,
        items_done = f::ITEMS_DONE,
        items = f::ITEMS,
    ))
});

/// Adds a shard to the job's done set if the job exists, the reporting consumer holds the
/// shard's lease (its queue entry is pending for it), and every item of the shard has an
/// outcome while the job runs; the set gets the job's remaining lifetime (a shard may finish
/// after the job did). KEYS: job hash, done set, the model's stream, results, failed. ARGV:
/// group, consumer, entry id, shard id, then the shard's items. Returns {1, state} when marked,
/// {0, ''} when the job is gone, {-3, ''} when the lease is not the consumer's, or {-4, item}
/// for the first item without an outcome.
pub static MARK_SHARD_DONE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return {{0, ''}} end
local p = redis.call('XPENDING', KEYS[3], ARGV[1], ARGV[3], ARGV[3], 1)
if #p == 0 or p[1][2] ~= ARGV[2] then return {{-3, ''}} end
local state = redis.call('HGET', KEYS[1], '{state}')
if state == '{running}' or state == '{queued}' then
  for i = 5, #ARGV do
    if redis.call('HEXISTS', KEYS[4], ARGV[i]) == 0 and redis.call('HEXISTS', KEYS[5], ARGV[i]) == 0 then
      return {{-4, ARGV[i]}}
    end
  end
end
redis.call('SADD', KEYS[2], ARGV[4])
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
return {{1, state}}
",
        state = f::STATE,
        running = job_states::RUNNING,
        queued = job_states::QUEUED,
    ))
});

/// Creates a job in one atomic step, so that whoever sees any part of it sees all of it: with
/// an idempotency key that another job already holds, nothing is written and that job's id is
/// returned; otherwise the job is admitted under its client's limit of running jobs (members
/// whose job has ended, or that were admitted but never stored for longer than the grace, are
/// pruned first), and its hash, plan, references, place in the jobs set, shards, their entry
/// ids and the idempotency key are written together.
/// KEYS: idempotency key (any name when ARGV[1] is 0), the client's jobs set, job hash, plan,
/// references, jobs set, the model's stream, the job's entries list, open jobs, state counts,
/// the jobs-indexed mark (set: these indexes hold every job from the first one on).
/// ARGV: has key (1|0), job id, limit, now (ms), the job-hash key prefix, grace (ms), the client
/// set's lifetime (ms), plan, has references (1|0), references, the number `n` of job-hash
/// fields, `n` field/value pairs, then per shard its body and traceparent (`''`: none).
/// Returns {'created', ''}, {'existing', job id} or {'full', running count}.
pub static CREATE_JOB: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        r"
if ARGV[1] == '1' then
  local existing = redis.call('GET', KEYS[1])
  if existing then return {{'existing', existing}} end
end
local now = tonumber(ARGV[4])
local members = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
for i = 1, #members, 2 do
  local state = redis.call('HGET', ARGV[5] .. members[i], '{state}')
  local open = state == '{queued}' or state == '{running}' or state == '{finalizing}'
  local stale = (state and not open) or (not state and now - tonumber(members[i + 1]) > tonumber(ARGV[6]))
  if stale then redis.call('ZREM', KEYS[2], members[i]) end
end
local running = redis.call('ZCARD', KEYS[2])
if running >= tonumber(ARGV[3]) then return {{'full', tostring(running)}} end
redis.call('ZADD', KEYS[2], now, ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[7])
local fields = tonumber(ARGV[11])
local first = 12
for i = first, first + 2 * fields - 1, 2 do redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1]) end
redis.call('SET', KEYS[4], ARGV[8])
if ARGV[9] == '1' then redis.call('SET', KEYS[5], ARGV[10]) end
redis.call('ZADD', KEYS[6], now, ARGV[2])
redis.call('ZADD', KEYS[9], now, ARGV[2])
redis.call('HINCRBY', KEYS[10], '{queued}', 1)
redis.call('SET', KEYS[11], '1')
for i = first + 2 * fields, #ARGV - 1, 2 do
  local id
  if ARGV[i + 1] == '' then
    id = redis.call('XADD', KEYS[7], '*', '{shard}', ARGV[i])
  else
    id = redis.call('XADD', KEYS[7], '*', '{shard}', ARGV[i], '{traceparent}', ARGV[i + 1])
  end
  redis.call('RPUSH', KEYS[8], id)
end
if ARGV[1] == '1' then redis.call('SET', KEYS[1], ARGV[2]) end
return {{'created', ''}}
",
        state = f::STATE,
        running = job_states::RUNNING,
        queued = job_states::QUEUED,
        finalizing = job_states::FINALIZING,
        shard = crate::queue::stream_fields::SHARD,
        traceparent = crate::queue::stream_fields::TRACEPARENT,
    ))
});

/// Renews a lease only while this consumer still holds it: a lease that expired and went to
/// another worker stays there. KEYS: stream. ARGV: group, consumer, entry id.
pub static RENEW_LEASE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #p == 0 or p[1][2] ~= ARGV[2] then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
",
    )
});

/// Makes a group's lag true again after entries it never read were deleted (a cancelled job's
/// shards): Redis counts them as still to be read, so `XINFO GROUPS` (and KEDA's `lagCount`)
/// would never return to 0. Sets the group's entries-read to the entries added minus those
/// still after its last-delivered id, counted in pages. KEYS: stream. ARGV: group.
/// Returns the lag, or -1 when the stream or group does not exist.
pub static RESYNC_LAG: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local function fields(flat)
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t
end
local last = nil
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local group = fields(g)
  if group['name'] == ARGV[1] then last = group['last-delivered-id'] end
end
if last == nil then return -1 end
local added = fields(redis.call('XINFO', 'STREAM', KEYS[1]))['entries-added']
local undelivered, from = 0, '(' .. last
while true do
  local page = redis.call('XRANGE', KEYS[1], from, '+', 'COUNT', 100)
  undelivered = undelivered + #page
  if #page < 100 then break end
  from = '(' .. page[#page][1]
end
redis.call('XGROUP', 'SETID', KEYS[1], ARGV[1], last, 'ENTRIESREAD', added - undelivered)
return undelivered
",
    )
});
