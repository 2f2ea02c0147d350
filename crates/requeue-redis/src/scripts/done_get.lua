-- done_get.lua  ARGV: now, item, token, lease_ms, batch, reap_base_ms,
--                     reap_max_ms, nonce
-- done then get in one round trip (the worker loop's fast path); due
-- items are promoted (at most `batch`) before the done's requeue.
-- Returns {done_code, then get's 7 fields}.
local batch = num(ARGV[5], 'batch')
promote(batch)
local code = done_core(ARGV[2], ARGV[3])
local got = get_core(ms_arg(ARGV[4], 'lease_ms'), batch,
  ms_arg(ARGV[6], 'reap_base_ms'), ms_arg(ARGV[7], 'reap_max_ms'), ARGV[8])
table.insert(got, 1, code)
return got
