-- Find a job still waiting in the broker's lists (published, not yet taken by
-- a worker) and report its place, take it out, or move it to another level.
-- An operator's query, not a hot path: it reads the lists (O(queue length)).
-- KEYS: the queue's lists, most urgent first (kombu pops from the right end).
-- ARGV: base, op (position | remove | move), job, target list index (move),
--       new priority (move), event detail (json), maxlen
-- Returns {list index, place} (place 1 = next to run) or {0, 0} if not found.
local op, job = ARGV[2], ARGV[3]
local needle = '"id": "' .. job .. '"'
local needle_compact = '"id":"' .. job .. '"'
local CHUNK = 1000
local ahead = 0
for k = 1, #KEYS do
  local key = KEYS[k]
  local length = redis.call('LLEN', key)
  -- scan from the right end (next to run) to the left
  local stop = length - 1
  while stop >= 0 do
    local start = math.max(0, stop - CHUNK + 1)
    local items = redis.call('LRANGE', key, start, stop)
    for i = #items, 1, -1 do
      local item = items[i]
      if string.find(item, needle, 1, true) or string.find(item, needle_compact, 1, true) then
        local place = ahead + (stop - (start + i - 1)) + 1
        if op == 'remove' then
          redis.call('LREM', key, 1, item)
          emit(ARGV[7], 'cancelled', job, ARGV[6])
        elseif op == 'move' then
          local message = cjson.decode(item)
          local previous = message['properties']['priority']
          message['properties']['priority'] = tonumber(ARGV[5])
          redis.call('LREM', key, 1, item)
          redis.call('LPUSH', KEYS[tonumber(ARGV[4])], cjson.encode(message))
          emit(ARGV[7], 'reprioritized', job,
               cjson.encode({priority = tonumber(ARGV[5]), previous = previous}))
        end
        return {k, place}
      end
    end
    stop = start - 1
  end
  ahead = ahead + length
end
return {0, 0}
