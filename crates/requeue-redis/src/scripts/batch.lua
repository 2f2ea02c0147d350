-- batch.lua  ARGV: now, lease_ms, batch, reap_base_ms, reap_max_ms, nonce,
--                  want_depth ('1' or '0'), then the operations, each a
--                  code and its arguments:
--   'a' item                   client-go Add
--   'd' item token forget      fenced Done ('1': the failure count is
--                              cleared too, only if the caller held it)
--   'g' count                  Get: lease up to `count` items
-- The operations of many callers in one call: they apply in order, exactly
-- as the same calls one after the other would, but the clock, the checks,
-- the promotion and the wake-up are paid once per call, not per item.
-- Returns {result of each operation..., reaped, now, next_wake|false,
-- depth|false}: 'a' and 'd' give the code add and done give, 'g' a flat
-- list {item, token, queue_ms, requeues, ...} of what it leased
-- (requeues: the item's failure count, client-go's NumRequeues, as raw
-- as stored: the client checks it). next_wake is set
-- when a get came back short (as get's), depth when asked for.
local lease = ms_arg(ARGV[2], 'lease_ms')
local batch = num(ARGV[3], 'batch')
local base, max = ms_arg(ARGV[4], 'reap_base_ms'), ms_arg(ARGV[5], 'reap_max_ms')
local nonce = ARGV[6]
local want_depth = ARGV[7] == '1'

-- Read every operation before anything is written: a malformed list is a
-- client bug, and raises with nothing changed.
local ops, i, gets, adds, dones, forgets = {}, 8, false, false, false, false
while i <= #ARGV do
  local op = ARGV[i]
  if op == 'a' and ARGV[i + 1] then
    ops[#ops + 1] = {op, ARGV[i + 1]}
    adds = true
    i = i + 2
  elseif op == 'd' and ARGV[i + 3] then
    ops[#ops + 1] = {op, ARGV[i + 1], ARGV[i + 2], ARGV[i + 3] == '1'}
    dones = true
    forgets = forgets or ARGV[i + 3] == '1'
    i = i + 4
  elseif op == 'g' and ARGV[i + 1] then
    local count = num(ARGV[i + 1], 'get count')
    if count < 1 or count > 1000 then error('requeue: get count out of range: ' .. ARGV[i + 1]) end
    ops[#ops + 1] = {op, count}
    gets = true
    i = i + 2
  else
    error('requeue: malformed batch operation at ARGV ' .. i .. ': ' .. tostring(op))
  end
end

-- Checks before the first write, of the keys this call can touch. The
-- reads it needs anyway check their keys' types as they go (read); the
-- other keys get a TYPE each.
local dead = {}
if gets then
  dead = read('ZRANGE', PROC, '-inf', NOW, 'BYSCORE', 'LIMIT', 0, batch)
  local seq = read('HMGET', META, 'seq')[1]
  if seq and not is_int(seq) then corrupt(META, 'seq', 'is not an integer') end
end
local first = read('ZRANGE', DELAYED, 0, 0, 'WITHSCORES')
-- Promotion only when the earliest delayed item is due.
local due = first[2] ~= nil and tonumber(first[2]) <= NOW
local unread = {Q, DIRTY, MARK} -- every operation, and promotion, can write these
if adds or gets or due then unread[#unread + 1] = ADDED end
if dones or gets then unread[#unread + 1] = OWN end
if forgets or gets or #dead > 0 then unread[#unread + 1] = FAIL end
if not gets then unread[#unread + 1] = PROC end
check_types(unpack(unread))
check_reap(dead)

ARMS = {}
if due then promote(batch) end
-- An add cancels a pending delay: one ZREM per run of adds, unless
-- nothing is delayed.
local delayed = first[1] ~= nil
local reaped, reaped_yet = 0, false
-- known_empty: a get came back short and nothing was queued since, so
-- the queue is empty without asking LLEN.
local popped, short, known_empty = false, false, false
local out = {}

-- Leases up to `count` items from the head of the queue, as get_core does
-- for one; variadic, so the cost does not grow with the count.
local function lease_items(count)
  if not reaped_yet then
    reaped = reap_items(dead, base, max)
    reaped_yet = true
    if reaped > 0 then delayed = true end
  end
  local items = redis.call('RPOP', Q, count)
  if not items or #items < count then
    -- The queue is empty now: a wake-up armed for what this call queued
    -- earlier would wake a getter for nothing (any later push re-arms).
    short, known_empty = true, true
    ARMS['r'] = nil
  end
  if not items then return {} end
  popped = true
  local n = #items
  redis.call('SREM', DIRTY, unpack(items))
  local last = redis.call('HINCRBY', META, 'seq', n)
  local added = redis.call('HMGET', ADDED, unpack(items))
  redis.call('HDEL', ADDED, unpack(items))
  local fails = redis.call('HMGET', FAIL, unpack(items))
  local deadlines, owners, got = {}, {}, {}
  for j, item in ipairs(items) do
    local token = string.format('%d', last - n + j) .. ':' .. nonce
    deadlines[#deadlines + 1] = NOW + lease
    deadlines[#deadlines + 1] = item
    owners[#owners + 1] = item
    owners[#owners + 1] = token
    local waited = NOW - (tonumber(added[j]) or NOW)
    if waited < 0 then waited = 0 end
    got[#got + 1] = item
    got[#got + 1] = token
    got[#got + 1] = waited
    got[#got + 1] = fails[j] or '0'
  end
  redis.call('ZADD', PROC, unpack(deadlines))
  redis.call('HSET', OWN, unpack(owners))
  return got
end

-- A run of adds of distinct items, as add_now one after the other would
-- do them, in a fixed number of variadic commands.
local function add_run(first, last)
  local items = {}
  for x = first, last do items[#items + 1] = ops[x][2] end
  if delayed then redis.call('ZREM', DELAYED, unpack(items)) end
  local dirty = redis.call('SMISMEMBER', DIRTY, unpack(items))
  local fresh, stamps = {}, {}
  for x, item in ipairs(items) do
    if dirty[x] == 1 then
      out[first + x - 1] = 0
    else
      fresh[#fresh + 1] = x
      stamps[#stamps + 1] = item
      stamps[#stamps + 1] = NOW
    end
  end
  if #fresh == 0 then return end
  local names = {}
  for _, x in ipairs(fresh) do names[#names + 1] = items[x] end
  redis.call('SADD', DIRTY, unpack(names))
  redis.call('HSET', ADDED, unpack(stamps))
  local held = redis.call('ZMSCORE', PROC, unpack(names))
  local push = {}
  for n, x in ipairs(fresh) do
    if held[n] then
      out[first + x - 1] = 2
    else
      out[first + x - 1] = 1
      push[#push + 1] = items[x]
    end
  end
  if #push > 0 then
    redis.call('LPUSH', Q, unpack(push))
    arm('r')
  end
end

-- A run of fenced dones of distinct items, as done_core one after the
-- other would do them, in a fixed number of variadic commands.
local function done_run(first, last)
  local items = {}
  for x = first, last do items[#items + 1] = ops[x][2] end
  local owners = redis.call('HMGET', OWN, unpack(items))
  local ended, forgets = {}, {}
  for x, item in ipairs(items) do
    local op = ops[first + x - 1]
    if not owners[x] then
      out[first + x - 1] = -2
    elseif owners[x] ~= op[3] then
      out[first + x - 1] = -1
    else
      ended[#ended + 1] = x
      if op[4] then forgets[#forgets + 1] = item end
    end
  end
  if #ended == 0 then return end
  local names = {}
  for _, x in ipairs(ended) do names[#names + 1] = items[x] end
  redis.call('HDEL', OWN, unpack(names))
  redis.call('ZREM', PROC, unpack(names))
  local dirty = redis.call('SMISMEMBER', DIRTY, unpack(names))
  local push = {}
  for n, x in ipairs(ended) do
    if dirty[n] == 1 then
      out[first + x - 1] = 2
      push[#push + 1] = items[x]
    else
      out[first + x - 1] = 1
    end
  end
  if #push > 0 then
    redis.call('LPUSH', Q, unpack(push))
    arm('r')
  end
  if #forgets > 0 then redis.call('HDEL', FAIL, unpack(forgets)) end
end

-- One operation on its own.
local function single(k)
  local op = ops[k]
  if op[1] == 'a' then
    if delayed then redis.call('ZREM', DELAYED, op[2]) end
    out[k] = add_core(op[2])
  elseif op[1] == 'd' then
    local code = done_core(op[2], op[3])
    if code > 0 and op[4] then redis.call('HDEL', FAIL, op[2]) end
    out[k] = code
  else
    out[k] = lease_items(op[2])
  end
end

-- Runs of the same kind (adds, or dones) over distinct items go
-- variadic; anything else, one at a time. Either way in order.
local k = 1
while k <= #ops do
  local kind, seen, last = ops[k][1], {[ops[k][2]] = true}, k
  if kind ~= 'g' then
    while ops[last + 1] and ops[last + 1][1] == kind and not seen[ops[last + 1][2]] do
      last = last + 1
      seen[ops[last][2]] = true
    end
  end
  if last == k then
    single(k)
  elseif kind == 'a' then
    add_run(k, last)
  else
    done_run(k, last)
  end
  k = last + 1
end

local depth = false
if want_depth or popped then
  if known_empty and not ARMS['r'] then
    depth = 0
  else
    depth = redis.call('LLEN', Q)
  end
end
-- After a get, wake a waiter only when items are left (chaining the
-- wake-up to the next waiter, as get does); what this call queued and
-- leased itself needs nobody.
if popped then
  if depth > 0 then ARMS['r'] = true else ARMS['r'] = nil end
end
for member in pairs(ARMS) do redis.call('ZADD', MARK, 0, member) end
ARMS = nil
local wake = false
if short then
  -- As next_wake, reusing the earliest delayed item read at the start
  -- when nothing can have joined delayed since (only reaping adds to it
  -- here, and promotion or an add's ZREM can only remove).
  local d = first
  if delayed and (reaped > 0 or due or adds) then
    d = redis.call('ZRANGE', DELAYED, 0, 0, 'WITHSCORES')
  end
  local p = redis.call('ZRANGE', PROC, 0, 0, 'WITHSCORES')
  if d[2] then wake = tonumber(d[2]) end
  if p[2] and (not wake or tonumber(p[2]) < wake) then wake = tonumber(p[2]) end
end
if not want_depth then depth = false end
out[#out + 1] = reaped
out[#out + 1] = NOW
out[#out + 1] = wake
out[#out + 1] = depth
return out
