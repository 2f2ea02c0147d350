-- done_get.lua  ARGV: now, item, token, lease_ms, batch, reap_base_ms,
--                     reap_max_ms, nonce
-- done then get in one round trip (the worker loop's fast path); due
-- items are promoted (at most `batch`) before the done's requeue.
-- Returns {done_code, then get's 7 fields}.
local lease = ms_arg(ARGV[4], 'lease_ms')
local batch = num(ARGV[5], 'batch')
local base, max = ms_arg(ARGV[6], 'reap_base_ms'), ms_arg(ARGV[7], 'reap_max_ms')
check_get_types()
local dead = expired(batch)
check_get_values(dead)
promote(batch)
local code = done_core(ARGV[2], ARGV[3])
local got = get_core(dead, lease, base, max, ARGV[8])
table.insert(got, 1, code)
return got
