-- add_batch.lua  ARGV: now, item...  (the client sends at most 1000 items)
-- add for each item, in order.
-- Returns {deduplicated, queued, parked, depth}.
check_queue_keys()
catch_up()
local counts = {0, 0, 0}
for i = 2, #ARGV do
  local code = add_now(ARGV[i])
  counts[code + 1] = counts[code + 1] + 1
end
return {counts[1], counts[2], counts[3], redis.call('LLEN', Q)}
