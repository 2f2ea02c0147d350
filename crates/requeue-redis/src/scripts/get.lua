-- get.lua  ARGV: now, lease_ms, batch, reap_base_ms, reap_max_ms, nonce
-- Promotes, then reaps, at most `batch` each, then leases the head.
-- Returns {item|false, token|false, next_wake_ms|false, depth, queue_ms,
--          reaped, now_ms}.
local lease = ms_arg(ARGV[2], 'lease_ms')
local batch = num(ARGV[3], 'batch')
local base, max = ms_arg(ARGV[4], 'reap_base_ms'), ms_arg(ARGV[5], 'reap_max_ms')
check_get_types()
local dead = expired(batch)
check_get_values(dead)
promote(batch)
return get_core(dead, lease, base, max, ARGV[6])
