-- Agent pools (pipeline.remote): the lease of a job an agent claimed over HTTP,
-- and the way back to the pool. Shared by claim.lua, lease.lua and the lease
-- sweep; nothing here runs at load time.
--
-- A pool is a broker queue no Celery worker consumes (its lists and wake list
-- are kombu's, see pipeline/broker/fetch.lua). A claimed job has
--   lease            hash: lease (the token the agent shows), token (the hold's
--                    fencing token), holder, agent, pool, msg (the message as it
--                    was taken), q (the list it was taken from), w (its queue's
--                    wake list), claimed, started, expires (ms)
--   leases           zset job -> lease deadline (ms), for the expiry sweep
-- and a pool's jobs not to be claimed yet (a countdown, a retry's backoff) wait in
--   delayed          zset per queue "<list number>US<message>" -> due (ms)
-- The lease and the hold of a claimed job share one deadline: they are taken,
-- renewed and ended together.

local function lease_key(job) return B .. K.lease[1] .. job .. K.lease[2] end
local function delayed_key(queue) return B .. K.delayed[1] .. queue .. K.delayed[2] end

local LEASE_FIELDS = {'lease', 'token', 'holder', 'agent', 'pool', 'msg', 'q', 'w',
                      'claimed', 'started', 'expires'}

-- The lease record of <job>, or nil when the job holds no lease.
local function lease_read(job)
  local v = redis.call('HMGET', lease_key(job), unpack(LEASE_FIELDS))
  if not v[1] then return nil end
  local r = {}
  for i, f in ipairs(LEASE_FIELDS) do r[f] = v[i] or '' end
  return r
end

-- An item of a pool no agent can use is set aside where an operator reads it
-- (the list set_aside of pipeline.broker.setaside), never silently dropped.
local function set_aside_item(queue, reason, raw)
  redis.call('LPUSH', B .. K.set_aside, cjson.encode({at = NOW / 1000, queue = queue,
             reason = reason, raw = raw, encoding = 'utf-8', size = #raw}))
  redis.call('HINCRBY', B .. K.set_aside_count, reason, 1)
  redis.call('HINCRBY', B .. K.set_aside_count, 'total', 1)
end

-- Keep <msg> (taken off list number <index> of <queue>) until <due> (ms).
local function delay(queue, index, msg, due)
  redis.call('ZADD', delayed_key(queue), num(due), index .. US .. msg)
end

-- Move the delayed jobs of <queue> that are due to the back of their lists
-- (<lists>, most urgent first), each with a wake token on <wake>.
local function promote_due(queue, lists, wake)
  local key = delayed_key(queue)
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', key, '-inf', NOW, 'LIMIT', 0, 100)) do
    local bar = string.find(member, US, 1, true)
    local list = bar and lists[tonumber(string.sub(member, 1, bar - 1))]
    if list then
      redis.call('LPUSH', list, string.sub(member, bar + 1))
      redis.call('LPUSH', wake, WAKE_TOKEN)
    else
      set_aside_item(queue, 'malformed delayed pool job', member)
    end
    redis.call('ZREM', key, member)
  end
end

-- When the next delayed job of <queue> is due (ms), or -1.
local function next_due(queue)
  local first = redis.call('ZRANGE', delayed_key(queue), 0, 0, 'WITHSCORES')
  return first[2] or '-1'
end

-- End the hold granted with fencing token <token> to <job> under <holder> (nothing
-- when it is gone or was granted anew) and hand its resources on.
local function end_grant(holder, job, token, cfg)
  local h = redis.call('HMGET', hkey(holder), 'claims', 'job', 'token')
  if h[1] and h[2] == job and tostring(h[3]) == tostring(token) then
    wake_rids(drop_hold(holder, parse_claims(h[1])), cfg)
  end
end

-- Forget the lease of <job>.
local function lease_drop(job)
  redis.call('DEL', lease_key(job))
  redis.call('ZREM', KEY.leases, job)
end

-- Give <job> (lease record <r>) back to its pool: the lease ends, its locks are
-- freed and handed on, and its message goes back to the front of the list it
-- was taken from (it keeps its place), with a wake token. The history says why.
local function give_back(job, r, reason, cfg)
  lease_drop(job)
  end_grant(r.holder, job, r.token, cfg)
  redis.call('RPUSH', r.q, r.msg)
  redis.call('LPUSH', r.w, WAKE_TOKEN)
  emit(cfg.maxlen, 'queued', job, cjson.encode({reason = reason, agent = r.agent,
       pool = r.pool, given_back = true}))
end

-- Give back (at most <limit>) claimed jobs whose lease ran out; returns how many.
local function expire_leases(limit, cfg)
  local due = redis.call('ZRANGEBYSCORE', KEY.leases, '-inf', NOW, 'LIMIT', 0, limit)
  for _, job in ipairs(due) do
    local r = lease_read(job)
    if r then
      give_back(job, r, 'the lease of agent ' .. r.agent .. ' ran out (no heartbeat within ' ..
                'its lease): the job is given back to pool ' .. r.pool, cfg)
    else
      redis.call('ZREM', KEY.leases, job)
    end
  end
  return #due
end
