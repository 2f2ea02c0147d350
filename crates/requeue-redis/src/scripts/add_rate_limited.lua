-- add_rate_limited.lua
-- ARGV: now, item, base_ms, max_ms, fast_ms, slow_ms, max_fast, rate, burst
--   base_ms, max_ms      ItemExponential ('' base = not configured)
--   fast_ms, slow_ms,
--   max_fast             ItemFastSlow ('' fast = not configured)
--   rate, burst          TokenBucket, rate in tokens/s as a decimal
--                        ('' rate = not configured; '0' = x/time/rate's
--                        zero limit: the burst, then never)
-- AddRateLimited = AddAfter(item, MaxOf(configured limiters).When(item)).
-- Every configured limiter counts the attempt, as MaxOf asks all of them.
-- Returns {code (as add_after), delay_ms, depth}.
-- Every argument is read, and every stored value checked, before the
-- first write.
local item = ARGV[2]
local exponential = ARGV[3] ~= ''
local fast_slow = ARGV[5] ~= ''
local limited = ARGV[8] ~= ''
local base, max, fast, slow, max_fast, rate, burst
if exponential then
  base, max = ms_arg(ARGV[3], 'base_ms'), ms_arg(ARGV[4], 'max_ms')
end
if fast_slow then
  fast, slow, max_fast = ms_arg(ARGV[5], 'fast_ms'), ms_arg(ARGV[6], 'slow_ms'), num(ARGV[7], 'max_fast')
end
if limited then
  rate, burst = num(ARGV[8], 'rate'), num(ARGV[9], 'burst')
end
check_queue_keys()
check_types(FAIL, LIM, META)
if exponential or fast_slow then check_ints(FAIL, {item}) end
check_ints(META, {'retries_total'})
if limited then
  check_ints(LIM, {'zero_used'})
  check_number(LIM, 'tat_us')
end

catch_up()
local delay = 0

-- NumRequeues: the per-item limiters count attempts; a bucket alone
-- knows no items (client-go's BucketRateLimiter.NumRequeues is 0).
local n = 0
if exponential or fast_slow then
  n = redis.call('HINCRBY', FAIL, item, 1)
end
if exponential then
  local d = backoff(n - 1, base, max)
  if d > delay then delay = d end
end
if fast_slow then
  local d = slow
  if n <= max_fast then d = fast end
  if d > delay then delay = d end
end

-- golang.org/x/time/rate Reserve() on a bucket that starts full, as GCRA:
-- T = 1/rate; TAT' = max(TAT, now) + T; wait = TAT' - burst*T - now. A
-- reservation is recorded even when it must wait.
local function bucket(rate, burst)
  if burst < 1 then return MAX_MS end -- can never hold a token: refused
  if rate <= 0 then
    local used = tonumber(redis.call('HGET', LIM, 'zero_used')) or 0
    if used < burst then
      redis.call('HINCRBY', LIM, 'zero_used', 1)
      return 0
    end
    return MAX_MS
  end
  local interval = 1000000 / rate
  local tat = tonumber(redis.call('HGET', LIM, 'tat_us')) or NOW_US
  if tat < NOW_US then tat = NOW_US end
  tat = tat + interval
  redis.call('HSET', LIM, 'tat_us', string.format('%.17g', tat))
  -- Whole microseconds first (absorbs float noise), then up to whole ms so
  -- an item is never due before its token.
  local wait_us = math.floor(tat - burst * interval - NOW_US + 0.5)
  if wait_us <= 0 then return 0 end
  local wait_ms = math.ceil(wait_us / 1000)
  if wait_ms > MAX_MS then return MAX_MS end
  return wait_ms
end
if limited then
  local d = bucket(rate, burst)
  if d > delay then delay = d end
end

redis.call('HINCRBY', META, 'retries_total', 1)
delay = math.floor(delay)
local code = add_later(item, delay)
return {code, delay, redis.call('LLEN', Q)}
