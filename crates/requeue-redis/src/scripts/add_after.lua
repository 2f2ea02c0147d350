-- add_after.lua  ARGV: now, item, delay_ms
-- AddAfter: delay <= 0 is add; else earliest delay wins; an item already
-- dirty (queued or parked) ignores the delay.
-- Returns {code (0 ignored/dedup | 1 queued | 2 parked | 3 delayed), depth}.
local delay = ms_arg(ARGV[3], 'delay_ms')
check_queue_keys()
catch_up()
local code = add_later(ARGV[2], delay)
return {code, redis.call('LLEN', Q)}
