-- inspect.lua  ARGV: now, limit, failures_cap   (reads only)
-- One consistent snapshot for `requeue inspect`. A key of the wrong type
-- is read as empty and named in the last field, so a damaged queue can
-- still be looked at.
-- Returns {now, depth, dirty, delayed, next_due_item|false,
--          next_due_ms|false, processing, {item, deadline, token|false, ...}
--          (first `limit` leases), failures_tracked,
--          {item, count, ...} (all, if failures_tracked <= failures_cap,
--          else empty), seq, lease_expired_total, retries_total,
--          {key, type, ...} (keys of the wrong type),
--          {field, ...} (meta fields that are not numbers)}.
local limit = num(ARGV[2], 'limit')
local cap = num(ARGV[3], 'failures_cap')
local wrong = {}
local usable = {}
for _, key in ipairs({Q, DIRTY, PROC, OWN, DELAYED, FAIL, LIM, META, MARK, ADDED}) do
  local t = redis.call('TYPE', key)['ok']
  usable[key] = t == 'none' or t == KIND[key]
  if not usable[key] then
    table.insert(wrong, key)
    table.insert(wrong, t)
  end
end
local function count(cmd, key)
  if usable[key] then return redis.call(cmd, key) end
  return 0
end
local first = {}
if usable[DELAYED] then first = redis.call('ZRANGE', DELAYED, 0, 0, 'WITHSCORES') end
local held = {}
if limit > 0 and usable[PROC] then
  local leases = redis.call('ZRANGE', PROC, 0, limit - 1, 'WITHSCORES')
  for i = 1, #leases, 2 do
    table.insert(held, leases[i])
    table.insert(held, tonumber(leases[i + 1]))
    local owner = false
    if usable[OWN] then owner = redis.call('HGET', OWN, leases[i]) end
    table.insert(held, owner)
  end
end
local tracked = count('HLEN', FAIL)
local failures = {}
if tracked <= cap and usable[FAIL] then failures = redis.call('HGETALL', FAIL) end
local meta = {false, false, false}
if usable[META] then
  meta = redis.call('HMGET', META, 'seq', 'lease_expired_total', 'retries_total')
end
local bad_meta = {}
for i, field in ipairs({'seq', 'lease_expired_total', 'retries_total'}) do
  if meta[i] and not tonumber(meta[i]) then table.insert(bad_meta, field) end
end
return {
  NOW, count('LLEN', Q), count('SCARD', DIRTY),
  count('ZCARD', DELAYED), first[1] or false,
  (first[2] and tonumber(first[2])) or false,
  count('ZCARD', PROC), held, tracked, failures,
  tonumber(meta[1]) or 0, tonumber(meta[2]) or 0, tonumber(meta[3]) or 0,
  wrong, bad_meta,
}
