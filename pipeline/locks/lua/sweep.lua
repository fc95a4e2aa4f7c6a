-- Maintenance: drop holds whose lease ran out (their holder died or stopped)
-- and hand their resources on; expire jobs parked longer than the wait timeout.
-- Never touches a live lease. Safe to run from many processes at once.
-- ARGV: base, grant_ms, wait_ms, maxlen, limit
-- Returns {holds dropped, parked jobs expired}.
local cfg = {grant_ms = tonumber(ARGV[2]), wait_ms = tonumber(ARGV[3]), maxlen = ARGV[4]}
local limit = tonumber(ARGV[5])
local dead = redis.call('ZRANGEBYSCORE', B .. 'holders', '-inf', NOW, 'LIMIT', 0, limit)
for _, holder in ipairs(dead) do
  local rec = redis.call('HMGET', hkey(holder), 'claims', 'job')
  if rec[1] then
    local claims = parse_claims(rec[1])
    for _, c in ipairs(claims) do
      local key = holding_key(c)
      local s = redis.call('ZSCORE', key, holder)
      if s and tonumber(s) <= NOW then redis.call('ZREM', key, holder) end
    end
    redis.call('DEL', hkey(holder))
    emit(cfg.maxlen, 'lock_lost', rec[2], cjson.encode({holder = holder, resources = rids_of(claims)}))
    -- Wake every line: its entry may have been dropped lazily already, by a
    -- script that had no reason to serve that resource's line.
    wake_rids(rids_of(claims), cfg)
  end
  redis.call('ZREM', B .. 'holders', holder)
end
local expired = 0
local order = B .. 'parked:order'
if cfg.wait_ms > 0 then
  -- Oldest first; an entry whose job is no longer parked (or parked again
  -- since) is dropped on the way. Bounded: at most <limit> expiries and ten
  -- times as many dropped entries per call.
  local cutoff, popped = NOW - cfg.wait_ms, 0
  while expired < limit and popped < limit * 10 do
    local head = redis.call('LINDEX', order, 0)
    if not head then break end
    local bar = string.find(head, '|', 1, true)
    local since = tonumber(string.sub(head, 1, bar - 1))
    if since > cutoff then break end
    local job = string.sub(head, bar + 1)
    redis.call('LPOP', order)
    popped = popped + 1
    local p = park_read(job)
    if p and p.since == since then
      local claims = drop_parked(job, 'expired', cjson.encode({
        reason = 'waited longer than the wait timeout for ' .. p.res,
        waited = (NOW - since) / 1000}), cfg.maxlen)
      expired = expired + 1
      wake_all(claims, cfg)
    end
  end
else
  redis.call('DEL', order)
end
drain_rewake(limit, cfg)
-- Cancel marks only matter while a message may still arrive: keep a day.
redis.call('ZREMRANGEBYSCORE', B .. 'cancelled', '-inf', NOW - 86400000)
return {#dead, expired}
