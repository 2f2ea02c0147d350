-- reap.lua  ARGV: now, batch, reap_base_ms, reap_max_ms
-- The expired-lease half of get, for a janitor timer: promotes (at most
-- `batch`) first, as get does, so items due before now stay ahead.
-- Returns the number of leases reaped.
local batch = num(ARGV[2], 'batch')
local base, max = ms_arg(ARGV[3], 'reap_base_ms'), ms_arg(ARGV[4], 'reap_max_ms')
check_get_types()
local dead = expired(batch)
check_reap(dead)
promote(batch)
return reap_items(dead, base, max)
