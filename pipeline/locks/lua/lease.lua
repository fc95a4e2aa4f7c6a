-- An agent's calls on a job it claimed (pipeline.remote), an operator's cancel
-- of one, and the lease sweep. Every call of an agent shows the lease it was
-- given: one that is not the job's current lease changes nothing.
-- ARGV: base, op, grant_ms, wait_ms, maxlen, lease_ms, then per op:
--   start    job lease          -> {1, msg, 1 when it was started before, deadline}
--   renew    job lease          -> {1, deadline}: the lease and the hold renewed
--   finish   job lease          -> {1, holder, token, msg, agent, pool, claimed, started}:
--                                  the lease ended; the caller releases the hold
--                                  (release.lua, fenced by the token)
--   giveback job lease reason   -> {1}: back to the pool at once
--   cancel   job reason         -> {1, msg}, or {0} when the job holds no lease
--   expire   limit              -> {n}: jobs whose lease ran out, given back
-- A refused call returns {0, why}: 'none' (the job holds no lease), 'stale'
-- (it holds another one: a late agent), 'expired' (its lease ran out: it is
-- given back now), 'lost' (its locks were released by hand: given back).
local op = ARGV[2]
local cfg = {grant_ms = tonumber(ARGV[3]), wait_ms = tonumber(ARGV[4]), maxlen = ARGV[5]}
local lease_ms = tonumber(ARGV[6])
local job, shown = ARGV[7], ARGV[8]

if op == 'expire' then
  return {expire_leases(tonumber(ARGV[7]), cfg)}
end

if op == 'cancel' then
  local r = lease_read(job)
  if not r then return {0} end
  lease_drop(job)
  end_grant(r.holder, job, r.token, cfg)
  emit(cfg.maxlen, 'cancelled', job, cjson.encode({reason = ARGV[8], agent = r.agent,
       pool = r.pool}))
  return {1, r.msg}
end

local r = lease_read(job)
if not r then return {0, 'none'} end
if r.lease ~= shown then return {0, 'stale'} end
if tonumber(r.expires) <= NOW then
  give_back(job, r, 'the lease of agent ' .. r.agent .. ' ran out before its call: the ' ..
            'job is given back to pool ' .. r.pool, cfg)
  return {0, 'expired'}
end

if op == 'start' then
  local before = r.started ~= ''
  if not before then redis.call('HSET', lease_key(job), 'started', NOW) end
  return {1, r.msg, before and 1 or 0, r.expires}
end

if op == 'renew' then
  local hk = hkey(r.holder)
  local h = redis.call('HMGET', hk, 'claims', 'token')
  local claims = h[1] and parse_claims(h[1])
  if not claims or tostring(h[2]) ~= r.token or not hold_alive(r.holder, claims) then
    give_back(job, r, 'the locks of agent ' .. r.agent .. ' were released while it ran the ' ..
              'job (pipeline locks release): the job is given back to pool ' .. r.pool, cfg)
    return {0, 'lost'}
  end
  local deadline = NOW + lease_ms
  for _, c in ipairs(claims) do
    redis.call('ZADD', holding_key(c), 'XX', deadline, r.holder)
  end
  redis.call('HSET', hk, 'expires', deadline)
  redis.call('PEXPIRE', hk, lease_ms * 3 + 60000)
  redis.call('ZADD', KEY.holders, 'XX', deadline, r.holder)
  redis.call('HSET', lease_key(job), 'expires', deadline)
  redis.call('ZADD', KEY.leases, deadline, job)
  return {1, deadline}
end

if op == 'finish' then
  lease_drop(job)
  return {1, r.holder, r.token, r.msg, r.agent, r.pool, r.claimed, r.started}
end

if op == 'giveback' then
  give_back(job, r, ARGV[9], cfg)
  return {1}
end

return redis.error_reply('unknown lease op ' .. tostring(op))
