-- get.lua  ARGV: now, lease_ms, batch, reap_base_ms, reap_max_ms, nonce
-- Promotes, then reaps, at most `batch` each, then leases the head.
-- Returns {item|false, token|false, next_wake_ms|false, depth, queue_ms,
--          reaped, now_ms}.
local batch = num(ARGV[3], 'batch')
promote(batch)
return get_core(ms_arg(ARGV[2], 'lease_ms'), batch,
  ms_arg(ARGV[4], 'reap_base_ms'), ms_arg(ARGV[5], 'reap_max_ms'), ARGV[6])
