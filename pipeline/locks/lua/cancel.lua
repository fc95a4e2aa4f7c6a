-- Remove a parked job from every line it waits in and record why.
-- ARGV: base, job, event type (cancelled | expired), detail (json), grant_ms, wait_ms, maxlen
-- Returns 1 if the job was parked, else 0.
local cfg = {grant_ms = tonumber(ARGV[5]), wait_ms = tonumber(ARGV[6]), maxlen = ARGV[7]}
local claims = drop_parked(ARGV[2], ARGV[3], ARGV[4], cfg.maxlen)
if not claims then return 0 end
wake_all(claims, cfg)
return 1
