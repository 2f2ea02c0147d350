-- dump.lua  ARGV: now   (reads only)
-- Everything stored under the queue's keys, read at one instant, for
-- inspect::diagnose and inspect::repair (O(N): not for a hot path).
-- Returns {type, content, type, content, ...} in the keys' order; content is
-- LRANGE / SMEMBERS / ZRANGE WITHSCORES / HGETALL for a key of its own
-- type, else empty (a key of another type is reported by its type only).
local out = {}
for _, key in ipairs({Q, DIRTY, PROC, OWN, DELAYED, FAIL, LIM, META, MARK, ADDED}) do
  local t = redis.call('TYPE', key)['ok']
  local content = {}
  if t == KIND[key] then
    if t == 'list' then
      content = redis.call('LRANGE', key, 0, -1)
    elseif t == 'set' then
      content = redis.call('SMEMBERS', key)
    elseif t == 'zset' then
      content = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
    else
      content = redis.call('HGETALL', key)
    end
  end
  table.insert(out, t)
  table.insert(out, content)
end
return out
