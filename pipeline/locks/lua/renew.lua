-- Renew the leases of the holds a process runs under.
-- ARGV: base, lease_ms, grant_ms, wait_ms, maxlen, holder...
-- Returns the holders whose lease had already run out (lost): what is left of
-- their hold is dropped and handed on, and a lock_lost event is written.
local lease = tonumber(ARGV[2])
local cfg = {grant_ms = tonumber(ARGV[3]), wait_ms = tonumber(ARGV[4]), maxlen = ARGV[5]}
local deadline = NOW + lease
local lost = {}
for i = 6, #ARGV do
  local holder = ARGV[i]
  local hk = hkey(holder)
  local rec = redis.call('HMGET', hk, 'claims', 'job')
  if not rec[1] then
    lost[#lost + 1] = holder
  else
    local claims = parse_claims(rec[1])
    if hold_alive(holder, claims) then
      for _, c in ipairs(claims) do redis.call('ZADD', holding_key(c), 'XX', deadline, holder) end
      redis.call('HSET', hk, 'expires', deadline)
      redis.call('PEXPIRE', hk, lease * 3 + 60000)
      redis.call('ZADD', KEY.holders, 'XX', deadline, holder)
    else
      drop_hold(holder, claims)
      -- Wake every line: a holder lazily dropped earlier freed nothing here.
      wake_rids(rids_of(claims), cfg)
      emit(cfg.maxlen, 'lock_lost', rec[2], cjson.encode({holder = holder, resources = rids_of(claims)}))
      lost[#lost + 1] = holder
    end
  end
end
return lost
