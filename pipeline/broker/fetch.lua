-- Take the next message off a consumer's queues and record it as taken, in one
-- step (see pipeline/broker/fetch.py). kombu pops a message (BRPOP) and writes
-- its record in the unacked hash afterwards: a worker killed in between loses
-- the message. Here the message is never out of Redis: it moves from its queue
-- list to the unacked hash and index atomically.
-- KEYS: the unacked hash, the unacked index, then the queue lists in the order
--       they are served (most urgent level first), then the queues' wake lists.
-- ARGV: now (seconds, the worker's clock, as kombu scores the index), the
--       number of queue lists n, then for each list i: '1' when its consumer
--       acknowledges (the message is recorded), else '0'; then for each list i
--       the position in KEYS of its queue's wake list.
-- WAKE_TOKEN comes from pipeline/keys.py, put in front of this file at load time.
-- Returns {i, item, tag} where tag is '' when the item was not recorded (a
-- consumer without acks, or an item that is no kombu message: the worker sets
-- it aside), or false when every list is empty.
local n = tonumber(ARGV[2])
local function record(item)
  local ok, msg = pcall(cjson.decode, item)
  if not ok or type(msg) ~= 'table' or type(msg.properties) ~= 'table' then return '' end
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

for i = 1, n do
  local item = redis.call('RPOP', KEYS[2 + i])
  if item then
    local tag = ''
    if ARGV[2 + i] == '1' then tag = record(item) end
    -- Messages pushed without a wake token (another client, an operator) still
    -- wake the next consumer: while a list holds more, its queue has a token.
    -- (Lists before i are empty: their RPOP found nothing.)
    local at = ARGV[2 + n + i]
    local wake = KEYS[tonumber(at)]
    if redis.call('LLEN', wake) == 0 then
      for j = i, n do
        if ARGV[2 + n + j] == at and redis.call('LLEN', KEYS[2 + j]) > 0 then
          redis.call('LPUSH', wake, WAKE_TOKEN)
          break
        end
      end
    end
    return {i, item, tag}
  end
end
-- Every list is empty: the tokens left are stale (their messages were taken
-- without them, cancelled or purged).
for k = 3 + n, #KEYS do redis.call('DEL', KEYS[k]) end
return false
