-- done.lua  ARGV: now, item, token
-- Fenced Done. Returns {code (1 done | 2 requeued | -1 held by another |
-- -2 held by nobody), depth}.
catch_up()
local code = done_core(ARGV[2], ARGV[3])
return {code, redis.call('LLEN', Q)}
