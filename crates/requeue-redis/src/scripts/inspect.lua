-- inspect.lua  ARGV: now, limit, failures_cap   (reads only)
-- One consistent snapshot for `requeue inspect`.
-- Returns {now, depth, dirty, delayed, next_due_item|false,
--          next_due_ms|false, processing, {item, deadline, token|false, ...}
--          (first `limit` leases), failures_tracked,
--          {item, count, ...} (all, if failures_tracked <= failures_cap,
--          else empty), seq, lease_expired_total, retries_total}.
local limit = num(ARGV[2], 'limit')
local cap = num(ARGV[3], 'failures_cap')
local first = redis.call('ZRANGE', DELAYED, 0, 0, 'WITHSCORES')
local held = {}
if limit > 0 then
  local leases = redis.call('ZRANGE', PROC, 0, limit - 1, 'WITHSCORES')
  for i = 1, #leases, 2 do
    table.insert(held, leases[i])
    table.insert(held, tonumber(leases[i + 1]))
    table.insert(held, redis.call('HGET', OWN, leases[i]))
  end
end
local tracked = redis.call('HLEN', FAIL)
local failures = {}
if tracked <= cap then failures = redis.call('HGETALL', FAIL) end
local meta = redis.call('HMGET', META, 'seq', 'lease_expired_total', 'retries_total')
return {
  NOW, redis.call('LLEN', Q), redis.call('SCARD', DIRTY),
  redis.call('ZCARD', DELAYED), first[1] or false,
  (first[2] and tonumber(first[2])) or false,
  redis.call('ZCARD', PROC), held, tracked, failures,
  tonumber(meta[1]) or 0, tonumber(meta[2]) or 0, tonumber(meta[3]) or 0,
}
