-- add.lua  ARGV: now, item
-- client-go Add (an immediate add cancels a pending delay).
-- Returns {code (0 dedup | 1 queued | 2 parked), depth}.
check_queue_keys()
catch_up()
local code = add_now(ARGV[2])
return {code, redis.call('LLEN', Q)}
