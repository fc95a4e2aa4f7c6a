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
if cfg.wait_ms > 0 then
  local old = redis.call('ZRANGEBYSCORE', B .. 'parked:since', '-inf', NOW - cfg.wait_ms,
                         'LIMIT', 0, limit)
  for _, job in ipairs(old) do
    local res = redis.call('HGET', pkey(job), 'res') or 'its resources'
    local since = tonumber(redis.call('ZSCORE', B .. 'parked:since', job))
    local claims = drop_parked(job, 'expired', cjson.encode({
      reason = 'waited longer than the wait timeout for ' .. res, waited = (NOW - since) / 1000}),
      cfg.maxlen)
    if claims then expired = expired + 1 else redis.call('ZREM', B .. 'parked:since', job) end
    wake_all(claims, cfg)
  end
end
drain_rewake(limit, cfg)
-- Cancel marks only matter while a message may still arrive: keep a day.
redis.call('ZREMRANGEBYSCORE', B .. 'cancelled', '-inf', NOW - 86400000)
return {#dead, expired}
