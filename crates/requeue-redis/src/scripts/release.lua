-- release.lua  ARGV: now, item, token
-- Fenced give-back (shutdown): the item goes to the HEAD of the queue, no
-- failure counted. A pending delay is cancelled (the work is due now). A
-- parked item keeps its add time; either way it is queued exactly once,
-- because a processing item is never in the queue.
-- Returns {code (1 released | -1 lease lost), depth}.
check_types(Q, DIRTY, PROC, OWN, DELAYED, MARK, ADDED)
catch_up()
local item = ARGV[2]
if redis.call('HGET', OWN, item) ~= ARGV[3] then
  return {-1, redis.call('LLEN', Q)}
end
redis.call('HDEL', OWN, item)
redis.call('ZREM', PROC, item)
redis.call('ZREM', DELAYED, item)
if redis.call('SADD', DIRTY, item) == 1 then
  redis.call('HSET', ADDED, item, NOW)
end
redis.call('RPUSH', Q, item)
arm('r')
return {1, redis.call('LLEN', Q)}
