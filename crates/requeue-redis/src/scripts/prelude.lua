-- prelude.lua: concatenated in front of every script at compile time.
--
-- KEYS: the same 10 keys, in the same order, for every script (one hash
-- tag, so one slot); scripts never build key names.
--   1 queue LIST (LPUSH = tail, RPOP = head)   2 dirty SET
--   3 processing ZSET item -> lease deadline ms 4 owners HASH item -> token
--   5 delayed ZSET item -> due ms               6 failures HASH item -> count
--   7 limiter HASH (tat_us, zero_used)          8 meta HASH (seq, counters)
--   9 marker ZSET (wake-up token)               10 added_at HASH item -> ms
--
-- ARGV[1]: now in ms as a decimal string, or '' for the server's TIME.
-- Tests inject a fake clock through it; production passes ''.
--
-- State rules (checked by inspect::check_invariants):
--   queued   = in queue; always dirty, never processing, at most once
--   parked   = dirty and processing (re-added while held; queued on done)
--   delayed  = in delayed; never dirty (an item already due ignores delays)
--   added_at = exactly the dirty items (client-go starts the queue-time
--              clock at the add, also for parked items)
--   owners   = exactly the processing items
--
-- Promotion first: every script that changes the queue (the add family,
-- get, done, done_get, release, reap) and len begins by promoting due
-- delayed items (see promote), so no change ever lands ahead of an item
-- that was already due. extend and inspect leave delayed items alone.
local Q, DIRTY, PROC, OWN, DELAYED, FAIL, LIM, META, MARK, ADDED =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]

-- Longest delay or lease, in ms (2^63 - 1 ns, requeue's NEVER, rounded up).
-- Keeps every timestamp + delay an exact integer in a Lua double.
local MAX_MS = 9223372036855

-- Nothing half-done. Redis does not undo the writes of a script that fails
-- part-way, so every script reads its arguments and checks everything it
-- will read (each key's type, each stored number it uses) BEFORE its first
-- write. A bad value stops the script there, having written nothing, with
--   REQUEUE_CORRUPT <key> <field as hex, or -> <what is wrong>
-- which the client reports as Error::Corrupt. added_at's values and the
-- owners' tokens need no check: a non-number added_at counts as "now" (it
-- only dates the queue-time metric) and a token that is not the holder's
-- is a lost lease, which is what the fenced scripts say anyway.
local KIND = {
  [Q] = 'list', [DIRTY] = 'set', [PROC] = 'zset', [OWN] = 'hash',
  [DELAYED] = 'zset', [FAIL] = 'hash', [LIM] = 'hash', [META] = 'hash',
  [MARK] = 'zset', [ADDED] = 'hash',
}

local function hex(s)
  return (string.gsub(s, '.', function(c) return string.format('%02x', string.byte(c)) end))
end

-- Stops the script (before any write) naming the bad key and field.
local function corrupt(key, field, problem)
  local f = '-'
  if field then f = hex(field) end
  error({err = 'REQUEUE_CORRUPT ' .. key .. ' ' .. f .. ' ' .. problem})
end

-- Each key has its type, or does not exist yet.
local function check_types(...)
  for _, key in ipairs({...}) do
    local t = redis.call('TYPE', key)['ok']
    if t ~= 'none' and t ~= KIND[key] then
      corrupt(key, nil, 'is a ' .. t .. ' where a ' .. KIND[key] .. ' belongs')
    end
  end
end

-- A read of `key` (its first argument) that doubles as the check of
-- its type: a key of the wrong type stops the script as check_types would.
-- Only for reads made before the script's first write.
local function read(cmd, key, ...)
  local ok, result = pcall(redis.call, cmd, key, ...)
  if ok then return result end
  check_types(key)
  error(result)
end

-- A 64-bit integer as Redis writes one (so HINCRBY accepts it), at most
-- 18 digits (so the increment cannot overflow).
local function is_int(v)
  return v == '0' or (#v <= 19 and string.find(v, '^%-?[1-9]%d*$') ~= nil)
end

-- The given fields of hash `key` are each absent or integers.
local function check_ints(key, fields)
  if #fields == 0 then return end
  local values = redis.call('HMGET', key, unpack(fields))
  for i, field in ipairs(fields) do
    if values[i] and not is_int(values[i]) then
      corrupt(key, field, 'is not an integer')
    end
  end
end

-- Field `field` of hash `key` is absent or a finite number.
local function check_number(key, field)
  local v = redis.call('HGET', key, field)
  if not v then return end
  local n = tonumber(v)
  if not n or n ~= n or n == math.huge or n == -math.huge then
    corrupt(key, field, 'is not a number')
  end
end

-- The keys every script that promotes touches (promote, add_core).
local function check_queue_keys()
  check_types(Q, DIRTY, PROC, DELAYED, MARK, ADDED)
end

-- A decimal ARGV as a number; a malformed one is a client bug, so it raises.
local function num(s, what)
  local n = tonumber(s)
  if not n then error('requeue: ARGV ' .. what .. ' is not a number: ' .. tostring(s)) end
  return n
end

-- A duration ARGV in ms, clamped to [0, MAX_MS].
local function ms_arg(s, what)
  local n = num(s, what)
  if n < 0 then return 0 end
  if n > MAX_MS then return MAX_MS end
  return math.floor(n)
end

-- Now, read once per call: NOW_US (microseconds) and NOW (whole ms).
local NOW_US, NOW
if ARGV[1] ~= nil and ARGV[1] ~= '' then
  NOW = math.floor(num(ARGV[1], 'now_ms'))
  NOW_US = NOW * 1000
else
  local t = redis.call('TIME')
  NOW_US = tonumber(t[1]) * 1000000 + tonumber(t[2])
  NOW = math.floor(NOW_US / 1000)
end

-- Wakes blocked waiters (they BZPOPMIN the marker): 'r' = ready work,
-- 'd' = the earliest due time changed. While ARMS is a table (batch.lua)
-- the wake-ups are only noted, and written once at the end: one ZADD per
-- call instead of one per item (the marker is a set, so it is the same).
local ARMS = nil
local function arm(member)
  if ARMS then ARMS[member] = true return end
  redis.call('ZADD', MARK, 0, member)
end

-- client-go Add() for an item that is not delayed: dedup on dirty, park
-- while processing, else enqueue at the tail. 0 dedup | 1 queued | 2 parked.
local function add_core(item)
  if redis.call('SADD', DIRTY, item) == 0 then return 0 end
  redis.call('HSET', ADDED, item, NOW)
  if redis.call('ZSCORE', PROC, item) then return 2 end
  redis.call('LPUSH', Q, item)
  arm('r')
  return 1
end

-- An immediate add wins over a pending delay (docs/behaviour.md,
-- deviation 3): the
-- waiting entry goes, the item is added now.
local function add_now(item)
  redis.call('ZREM', DELAYED, item)
  return add_core(item)
end

-- AddAfter: <= 0 is an immediate add. An item already dirty (queued or
-- parked) is due anyway, so a delay would only postpone it: ignored (0).
-- Among delays the earliest wins (ZADD LT); a later one is ignored (0).
-- 3 = delayed (new or moved earlier).
local function add_later(item, delay)
  if delay <= 0 then return add_now(item) end
  if redis.call('SISMEMBER', DIRTY, item) == 1 then return 0 end
  local due = NOW + delay
  if redis.call('ZADD', DELAYED, 'LT', 'CH', due, item) == 0 then return 0 end
  local first = redis.call('ZRANGE', DELAYED, 0, 0, 'WITHSCORES')
  if tonumber(first[2]) == due then arm('d') end
  return 3
end

-- Moves at most `limit` due items from delayed into the queue (or parks
-- them), earliest first; items due at the same ms in member-byte order
-- (ZRANGE's order for equal scores).
--
-- Every script that changes the queue calls it FIRST, so an item is queued
-- as of its due time: before anything that happens after it (an add, a
-- done's requeue, a release), as the in-memory queue's timer does. When
-- nothing is due it costs one ZRANGE.
local function promote(limit)
  if limit <= 0 then return 0 end
  local due = redis.call('ZRANGE', DELAYED, '-inf', NOW, 'BYSCORE', 'LIMIT', 0, limit)
  if #due == 0 then return 0 end
  redis.call('ZREM', DELAYED, unpack(due))
  for _, item in ipairs(due) do
    add_core(item)
  end
  return #due
end

-- The promotion bound of the scripts without a `batch` ARGV (the add
-- family, done, release, len): get's default batch. A backlog of more
-- due items is promoted, earliest first, by the following calls.
local PROMOTE_BATCH = 100

-- Promotes up to PROMOTE_BATCH due items: the first step of those scripts.
local function catch_up()
  return promote(PROMOTE_BATCH)
end

-- client-go's ItemExponentialFailure: base * 2^n (n = earlier failures),
-- at most max (compared with >=); a base of 0 always waits 0.
local function backoff(n, base, max)
  if base <= 0 then return 0 end
  local d = base * 2 ^ math.min(n, 64)
  if d >= max then return max end
  return d
end

-- Expired leases (holder presumed dead): at most `limit` of them, read
-- before the script writes anything, so their failure counts can be
-- checked first (see check_reap).
local function expired(limit)
  if limit <= 0 then return {} end
  return redis.call('ZRANGE', PROC, '-inf', NOW, 'BYSCORE', 'LIMIT', 0, limit)
end

-- What reaping `dead` reads: the failure counts it increments and the
-- expired-lease counter.
local function check_reap(dead)
  if #dead == 0 then return end
  check_ints(FAIL, dead)
  check_ints(META, {'lease_expired_total'})
end

-- Reaps the leases in `dead` that are still expired (a done in the same
-- script may have ended one): each counts a failure and comes back
-- through delayed with per-item backoff.
local function reap_items(dead, base, max)
  local reaped = 0
  for _, item in ipairs(dead) do
    local deadline = redis.call('ZSCORE', PROC, item)
    if deadline and tonumber(deadline) <= NOW then
      redis.call('ZREM', PROC, item)
      redis.call('HDEL', OWN, item)
      local n = redis.call('HINCRBY', FAIL, item, 1) - 1
      -- A parked item's pending add is now carried by the delayed entry.
      -- Left dirty, its promotion would dedup against itself and the add
      -- be lost.
      if redis.call('SREM', DIRTY, item) == 1 then redis.call('HDEL', ADDED, item) end
      add_later(item, backoff(n, base, max))
      redis.call('HINCRBY', META, 'lease_expired_total', 1)
      reaped = reaped + 1
    end
  end
  if reaped > 0 then arm('d') end
  return reaped
end

-- Earliest of the next due time and the next lease deadline, or false.
local function next_wake()
  local d = redis.call('ZRANGE', DELAYED, 0, 0, 'WITHSCORES')
  local p = redis.call('ZRANGE', PROC, 0, 0, 'WITHSCORES')
  local w = false
  if d[2] then w = tonumber(d[2]) end
  if p[2] and (not w or tonumber(p[2]) < w) then w = tonumber(p[2]) end
  return w
end

-- Get: reap `dead` (from expired()), pop the head and lease it under a
-- fencing token "<epoch>:<nonce>". The caller has promoted first
-- (promote(batch)), so items due before now are queued ahead of the
-- reaped ones (a reaped item waits out its backoff, or with none is added
-- now). Returns
-- {item|false, token|false, next_wake|false, depth, queue_ms, reaped, now}.
local function get_core(dead, lease, base, max, nonce)
  local reaped = reap_items(dead, base, max)
  local item = redis.call('RPOP', Q)
  if not item then return {false, false, next_wake(), 0, 0, reaped, NOW} end
  redis.call('SREM', DIRTY, item)
  local seq = redis.call('HINCRBY', META, 'seq', 1)
  local token = string.format('%d', seq) .. ':' .. nonce
  redis.call('ZADD', PROC, NOW + lease, item)
  redis.call('HSET', OWN, item, token)
  local added = tonumber(redis.call('HGET', ADDED, item)) or NOW
  redis.call('HDEL', ADDED, item)
  local depth = redis.call('LLEN', Q)
  if depth > 0 then arm('r') end -- chain the wake-up to the next waiter
  local waited = NOW - added
  if waited < 0 then waited = 0 end
  return {item, token, false, depth, waited, reaped, NOW}
end

-- The keys get (promote, reap, get_core) touches.
local function check_get_types()
  check_types(Q, DIRTY, PROC, OWN, DELAYED, FAIL, META, MARK, ADDED)
end

-- The numbers get_core and reaping `dead` read.
local function check_get_values(dead)
  check_ints(META, {'seq'})
  check_reap(dead)
end

-- Fenced Done: -1 lease lost (not the holder's token), 1 done, 2 requeued
-- (re-added while processing: goes to the tail, keeps its add time).
local function done_core(item, token)
  local owner = redis.call('HGET', OWN, item)
  -- -2: nobody holds it (reaped and not handed out again, or this very
  -- done already ran and its reply was lost); -1: someone else holds it.
  if not owner then return -2 end
  if owner ~= token then return -1 end
  redis.call('HDEL', OWN, item)
  redis.call('ZREM', PROC, item)
  if redis.call('SISMEMBER', DIRTY, item) == 1 then
    redis.call('LPUSH', Q, item)
    arm('r')
    return 2
  end
  return 1
end
