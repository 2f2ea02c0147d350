-- done.lua  ARGV: now, item, token[, forget]
-- Fenced Done; with forget = '1' the item's failure count is cleared in the
-- same step (client-go's Forget then Done), only if the caller still held it.
-- Returns {code (1 done | 2 requeued | -1 held by another | -2 held by nobody),
-- depth}.
check_types(Q, DIRTY, PROC, OWN, DELAYED, FAIL, MARK, ADDED)
catch_up()
local code = done_core(ARGV[2], ARGV[3])
if code > 0 and ARGV[4] == '1' then redis.call('HDEL', FAIL, ARGV[2]) end
return {code, redis.call('LLEN', Q)}
