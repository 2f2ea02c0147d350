-- len.lua  ARGV: now
-- client-go Len: promotes due items (at most PROMOTE_BATCH), as client-go's
-- waiting loop would have by now, then counts the queue.
-- Returns the depth.
check_queue_keys()
catch_up()
return redis.call('LLEN', Q)
