-- reap.lua  ARGV: now, batch, reap_base_ms, reap_max_ms
-- The expired-lease half of get, for a janitor timer.
-- Returns the number of leases reaped.
return reap(num(ARGV[2], 'batch'), ms_arg(ARGV[3], 'reap_base_ms'),
  ms_arg(ARGV[4], 'reap_max_ms'))
