-- Release a job's hold and hand the freed capacity to parked jobs, in the
-- same call; or keep it (a workflow between two steps).
-- ARGV: base, holder, job, event type ('' = none), event detail (json),
--       keep_ms (0 = release), grant_ms, wait_ms, maxlen,
--       token (the grant's fencing token; '' = whatever the hold's)
-- Returns the number of resources freed (-1 when kept, 0 when nothing was held).
local holder, job, etype, detail = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local keep = tonumber(ARGV[6])
local cfg = {grant_ms = tonumber(ARGV[7]), wait_ms = tonumber(ARGV[8]), maxlen = ARGV[9]}
local hk = hkey(holder)
local token = ARGV[10] or ''
local rec = redis.call('HMGET', hk, 'claims', 'job', 'token')
local result = 0
-- Only the run the hold was last granted to may end it: a stopped process that
-- wakes after its lease ran out must not free a newer holder's lock, even a
-- later run of the same job (a retry, a redelivery) under a newer token.
if rec[1] and rec[2] == job and (token == '' or token == rec[3]) then
  local claims = parse_claims(rec[1])
  -- A cancelled workflow keeps nothing: its next step may already have been
  -- dropped (Celery publishes it before the step's release runs).
  if keep > 0 and redis.call('ZSCORE', KEY.cancelled, holder) then keep = 0 end
  if keep > 0 then
    local deadline = NOW + keep
    for _, c in ipairs(claims) do redis.call('ZADD', holding_key(c), 'XX', deadline, holder) end
    redis.call('HSET', hk, 'state', 'between', 'expires', deadline)
    redis.call('PEXPIRE', hk, keep * 3 + 60000)
    redis.call('ZADD', KEY.holders, 'XX', deadline, holder)
    result = -1
  else
    local freed = drop_hold(holder, claims)
    wake_rids(freed, cfg)
    result = #freed
  end
end
if etype ~= '' then emit(cfg.maxlen, etype, job, detail) end
if redis.call('EXISTS', KEY.rewake) == 1 then drain_rewake(4, cfg) end
return result
