-- Move a parked job to its new place in every line it waits in: its flow's
-- next turn at the new level (fair_rank, as if it parked now), so it goes
-- behind the jobs of its project (or of no project) already waiting there.
-- ARGV: base, job, new priority, grant_ms, wait_ms, maxlen
-- Returns the previous priority, or -1 if the job is not parked.
local job, prio = ARGV[2], tonumber(ARGV[3])
local cfg = {grant_ms = tonumber(ARGV[4]), wait_ms = tonumber(ARGV[5]), maxlen = ARGV[6]}
local p = park_read(job)
if not p then return -1 end
local previous = math.floor(p.rank / RANK_STEP)
local claims = parse_claims(p.claims)
local rank = p.rank
if prio ~= previous then rank = fair_rank(prio, claims, NOW, true) end
for _, c in ipairs(claims) do redis.call('ZADD', lkey(c[1]), 'XX', num(rank), job) end
p.rank = rank
park_write(job, p)
redis.call('HINCRBY', KEY.parked_count, previous, -1)
redis.call('HINCRBY', KEY.parked_count, prio, 1)
emit(cfg.maxlen, 'reprioritized', job, cjson.encode({priority = prio, previous = previous}))
wake_all(claims, cfg)
return previous
