-- Take the next message off a consumer's queues and record it as taken, in one
-- step (see pipeline/broker/fetch.py). kombu pops a message (BRPOP) and writes
-- its record in the unacked hash afterwards: a worker killed in between loses
-- the message. Here the message is never out of Redis: it moves from its queue
-- list to the unacked hash and index atomically.
-- With parking on, a job whose resources are visibly held is parked instead
-- (park_in_fetch in park.lua) and the next message taken, up to a limit.
-- KEYS: the unacked hash, the unacked index, then the queue lists in the order
--       they are served (most urgent level first), then the queues' wake lists.
-- ARGV: now (seconds, the worker's clock, as kombu scores the index), the
--       number of queue lists n, then for each list i: '1' when its consumer
--       acknowledges (the message is recorded), else '0'; then for each list i
--       the position in KEYS of its queue's wake list; then ahead: '1' when
--       the call takes the place of the wait on the wake lists (the message
--       taken takes its token with it); then the number m of delivery tags
--       acknowledged with this call, and the m tags (their records are
--       removed first, as kombu's ack does); then parking: the lock
--       key base ('' = parking off), the worker's host, the most jobs parked
--       per call, the capacities of user, project, model and global, grant_ms,
--       wait_ms, the event stream's maxlen, the job header's name, its newest
--       version, the header of a copy to check.
-- The key table K, WAKE_SUFFIX, WAKE_TOKEN and lib.lua come first (fetch.py).
-- Returns {i, item, tag, parked, more, left}: i = 0 when no message is
-- delivered, else the list it came from; tag '' when the item was not recorded
-- (a consumer without acks, or an item that is no kombu message: the worker
-- sets it aside); parked = for each job parked here its id, task, the resource
-- it waits for, what blocks it there and its position, flat; more = 1 when the
-- call stopped at its parking limit with messages left; left = 1 when a
-- message was delivered and the lists still hold more (the next call need not
-- wait).
local n = tonumber(ARGV[2])
local ahead = ARGV[3 + 2 * n] == '1'
local m = tonumber(ARGV[4 + 2 * n])
if m > 0 then
  local tags = {}
  for t = 1, m do tags[t] = ARGV[4 + 2 * n + t] end
  redis.call('HDEL', KEYS[1], unpack(tags))
  redis.call('ZREM', KEYS[2], unpack(tags))
end
local o = 4 + 2 * n + m
local PARK = nil
if ARGV[o + 1] ~= '' then
  begin({ARGV[o + 1]})
  PARK = {host = ARGV[o + 2], limit = tonumber(ARGV[o + 3]),
          caps = {user = tonumber(ARGV[o + 4]), project = tonumber(ARGV[o + 5]),
                  model = tonumber(ARGV[o + 6]), global = tonumber(ARGV[o + 7])},
          cfg = {grant_ms = tonumber(ARGV[o + 8]), wait_ms = tonumber(ARGV[o + 9]),
                 maxlen = ARGV[o + 10]},
          header = ARGV[o + 11], version = tonumber(ARGV[o + 12]), recheck = ARGV[o + 13]}
end

local function record(item, msg)
  if type(msg) ~= 'table' or type(msg.properties) ~= 'table' then return '' end
  local tag, info = msg.properties.delivery_tag, msg.properties.delivery_info
  if type(tag) ~= 'string' or tag == '' or type(info) ~= 'table'
      or type(info.exchange) ~= 'string' or type(info.routing_key) ~= 'string' then
    return ''
  end
  -- kombu's record: [message, exchange, routing key] as JSON; the item is the message's JSON.
  redis.call('HSET', KEYS[1], tag,
    '[' .. item .. ',' .. cjson.encode(info.exchange) .. ',' .. cjson.encode(info.routing_key) .. ']')
  redis.call('ZADD', KEYS[2], ARGV[1], tag)
  return tag
end

-- Messages pushed without a wake token (another client, an operator) still
-- wake the next consumer: while a list from <i> on holds more, its queue has
-- a token. (Lists before i are empty: their RPOP found nothing.)
local function keep_token(i)
  local at = ARGV[2 + n + i]
  local wake = KEYS[tonumber(at)]
  if redis.call('LLEN', wake) == 0 then
    for j = i, n do
      if ARGV[2 + n + j] == at and redis.call('LLEN', KEYS[2 + j]) > 0 then
        redis.call('LPUSH', wake, WAKE_TOKEN)
        return
      end
    end
  end
end

local parked, count = {}, 0
while true do
  local i, item = nil, nil
  for j = 1, n do
    item = redis.call('RPOP', KEYS[2 + j])
    if item then i = j break end
  end
  if not i then
    -- Every list is empty: the tokens left are stale (their messages were
    -- taken without them, parked, cancelled or purged).
    for k = 3 + n, #KEYS do redis.call('DEL', KEYS[k]) end
    return {0, '', '', parked, 0, 0}
  end
  local ok, msg = pcall(cjson.decode, item)
  if not ok then msg = nil end
  local wake = KEYS[tonumber(ARGV[2 + n + i])]
  local done = nil
  if PARK and type(msg) == 'table' then
    local queue = string.sub(wake, 1, #wake - #WAKE_SUFFIX)
    -- A message this cannot read is delivered (and set aside there if no
    -- worker can use it), never a failed fetch.
    local fine, got = pcall(park_in_fetch, item, msg, queue, PARK)
    if fine then done = got end
  end
  if not done then
    local tag = ''
    if ARGV[2 + i] == '1' then tag = record(item, msg) end
    if ahead then redis.call('RPOP', wake) end
    keep_token(i)
    local left = 0
    for j = i, n do
      if redis.call('LLEN', KEYS[2 + j]) > 0 then left = 1 break end
    end
    return {i, item, tag, parked, 0, left}
  end
  for _, v in ipairs(done) do parked[#parked + 1] = v end
  -- The parked message's own token goes with it.
  redis.call('RPOP', wake)
  count = count + 1
  if count >= PARK.limit then
    -- Bounded work per call: the worker calls again at once.
    for j = 1, n do
      if redis.call('LLEN', KEYS[2 + j]) > 0 then
        keep_token(j)
        return {0, '', '', parked, 1, 0}
      end
    end
    for k = 3 + n, #KEYS do redis.call('DEL', KEYS[k]) end
    return {0, '', '', parked, 0, 0}
  end
end
