-- Find a job still waiting in the broker's lists (published, not yet taken by
-- a worker) and report its place, take it out, or swap its message for a
-- rewritten one. An operator's query, not a hot path: it reads the lists
-- (O(queue length)).
-- KEYS: the queue's lists, most urgent first (kombu pops from the right end);
--       for op swap: the list holding the message, then the list to put the
--       new message in.
-- ARGV: base, op (position | remove | swap), job, event detail (json), maxlen,
--       then for position/remove: the needles, each the text that marks the
--       job's id in a message (the id as JSON, after '"id": ' or '"id":');
--       for swap: the message as found, the new message.
-- Returns {list index, place, message} (place 1 = next to run) or {0, 0} if
-- not found; for swap {1} if swapped, {0} if the message was gone.
local op, job, detail, maxlen = ARGV[2], ARGV[3], ARGV[4], ARGV[5]

if op == 'swap' then
  if redis.call('LREM', KEYS[1], 1, ARGV[6]) == 0 then return {0} end
  redis.call('LPUSH', KEYS[2], ARGV[7])
  emit(maxlen, 'reprioritized', job, detail)
  return {1}
end

local needles = {}
for i = 6, #ARGV do needles[#needles + 1] = ARGV[i] end
local function holds_job(item)
  for _, needle in ipairs(needles) do
    if string.find(item, needle, 1, true) then return true end
  end
  return false
end

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
      if holds_job(item) then
        local place = ahead + (stop - (start + i - 1)) + 1
        if op == 'remove' then
          redis.call('LREM', key, 1, item)
          emit(maxlen, 'cancelled', job, detail)
        end
        return {k, place, item}
      end
    end
    stop = start - 1
  end
  ahead = ahead + length
end
return {0, 0}
