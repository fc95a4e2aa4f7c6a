-- Move a parked job to its new place in every line it waits in; it keeps its
-- arrival number, so it goes behind jobs of the new level that came earlier.
-- ARGV: base, job, new priority, grant_ms, wait_ms, maxlen
-- Returns the previous priority, or -1 if the job is not parked.
local job, prio = ARGV[2], tonumber(ARGV[3])
local cfg = {grant_ms = tonumber(ARGV[4]), wait_ms = tonumber(ARGV[5]), maxlen = ARGV[6]}
local pk = pkey(job)
local rec = redis.call('HMGET', pk, 'rank', 'claims')
if not rec[1] then return -1 end
local old = tonumber(rec[1])
local previous = math.floor(old / RANK_STEP)
local rank = prio * RANK_STEP + (old - previous * RANK_STEP)
local claims = parse_claims(rec[2])
for _, c in ipairs(claims) do redis.call('ZADD', lkey(c[1]), 'XX', num(rank), job) end
redis.call('HSET', pk, 'rank', num(rank))
redis.call('HINCRBY', B .. 'parked:count', previous, -1)
redis.call('HINCRBY', B .. 'parked:count', prio, 1)
emit(cfg.maxlen, 'reprioritized', job, cjson.encode({priority = prio, previous = previous}))
wake_all(claims, cfg)
return previous
