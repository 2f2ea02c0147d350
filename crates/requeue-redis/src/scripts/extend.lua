-- extend.lua  ARGV: now, lease_ms, item, token, item, token, ...
-- Fenced renewal: every lease still held under its token runs until
-- now + lease (never shortened: ZADD XX GT).
-- Returns the items whose lease is lost (token no longer the owner's).
local deadline = NOW + ms_arg(ARGV[2], 'lease_ms')
check_types(OWN, PROC)
local lost = {}
for i = 3, #ARGV - 1, 2 do
  local item = ARGV[i]
  if redis.call('HGET', OWN, item) == ARGV[i + 1] then
    redis.call('ZADD', PROC, 'XX', 'GT', deadline, item)
  else
    table.insert(lost, item)
  end
end
return lost
