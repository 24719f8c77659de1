"""The Lua scripts of a thread's store (bot/storage/redis_conversations.py): each touches one thread's keys only,
which share a hash tag, so each runs on one slot of a cluster. A fenced write first compares the lease's token with
the thread's fence counter and returns -1 (redis_conversations.STALE) when another holder has the thread.
"""

from __future__ import annotations

# KEYS: lock, fence, queue, waiters. ARGV: lease ms, fence TTL s, order, waiter id, alive ms. Each try puts the
# waiter in the thread's queue (scored by its question's time); the lock goes only to the queue's head, so questions
# are stored in the order they were asked even when a later one reaches a free thread first (a question asked again
# after its process died). A waiter that stopped trying (its process died) drops out once its alive time passes.
ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local alive = tonumber(ARGV[5])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
redis.call('HSET', KEYS[4], ARGV[4], now + alive)
redis.call('PEXPIRE', KEYS[3], 4 * alive)
redis.call('PEXPIRE', KEYS[4], 4 * alive)
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
while true do
  local head = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
  if head == ARGV[4] then break end
  if tonumber(redis.call('HGET', KEYS[4], head) or '0') >= now then return 0 end
  redis.call('ZREM', KEYS[3], head)
  redis.call('HDEL', KEYS[4], head)
end
redis.call('ZREM', KEYS[3], ARGV[4])
redis.call('HDEL', KEYS[4], ARGV[4])
local token = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('SET', KEYS[1], token, 'PX', ARGV[1])
return token
"""
# KEYS: lock, fence, meta. ARGV: token, lease ms. A lock key that expired while this holder could not reach Redis is
# taken back if nobody else took the thread meanwhile (the fence is still this token): its writes were never at risk.
# Returns 2 once the holder's last write gave the thread up ("finish"): a renewal racing that write must not take it
# back.
RENEW_FENCED = """
if redis.call('HGET', KEYS[3], 'finished') == ARGV[1] then return 2 end
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end"
RENEW = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end"
FENCE = "if ARGV[1] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[1] then return -1 end\n"
# KEYS: turns, meta, fence, lock. ARGV: token or '', TTL s, persona or '', measured or '', exchange or '', turns...
# "finish" closes the exchange, frees the lock and notes the token in `finished` in the same step; a finish sent again
# after its reply was lost finds that note and changes nothing (the next holder may already have the thread).
APPEND = (
    "if ARGV[5] == 'finish' and redis.call('HGET', KEYS[2], 'finished') == ARGV[1] then\n"
    "  return redis.call('LLEN', KEYS[1])\nend\n"
    + FENCE
    + """
local added = #ARGV - 5
local base = tonumber(redis.call('HGET', KEYS[2], 'base')) or 0
local length
if added > 0 then length = redis.call('RPUSH', KEYS[1], unpack(ARGV, 6)) else length = redis.call('LLEN', KEYS[1]) end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[2], 'persona', ARGV[3]) end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[2], 'measured', ARGV[4]) end
if ARGV[5] == 'open' then
  redis.call('HSET', KEYS[2], 'open', cjson.encode({token = tonumber(ARGV[1]), question_index = length + base - added}))
elseif ARGV[5] == 'close' or ARGV[5] == 'finish' then
  redis.call('HDEL', KEYS[2], 'open')
end
if ARGV[5] == 'finish' then
  if redis.call('GET', KEYS[4]) == ARGV[1] then redis.call('DEL', KEYS[4]) end
  redis.call('HSET', KEYS[2], 'finished', ARGV[1])
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return length
"""
)
# KEYS: turns, meta, fence. ARGV: token or '', TTL s, fold, its upto, folded turns kept. The folded turns beyond the
# newest kept ones are trimmed in the same step (turn 0 stays first): see bot/storage/thread_window.py, trimmed_count.
SAVE_FOLD = (
    FENCE
    + """
redis.call('HSET', KEYS[2], 'fold', ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[2])
local base = tonumber(redis.call('HGET', KEYS[2], 'base')) or 0
local drop = tonumber(ARGV[4]) - tonumber(ARGV[5]) - base - 1
if drop > 0 and drop + 1 < redis.call('LLEN', KEYS[1]) then
  local first = redis.call('LINDEX', KEYS[1], 0)
  redis.call('LTRIM', KEYS[1], drop + 1, -1)
  redis.call('LPUSH', KEYS[1], first)
  redis.call('HSET', KEYS[2], 'base', base + drop)
end
return 1
"""
)
# KEYS: turns, meta. Returns persona, fold, measured, open, base, start, then turn 0 and the turns from list position
# `start` on: what an answer needs, not the folded turns (bot/storage/thread_window.py, load_start).
LOAD = """
local meta = redis.call('HMGET', KEYS[2], 'persona', 'fold', 'measured', 'open', 'base')
local base = tonumber(meta[5]) or 0
local start = 1
if meta[2] then
  local ok, fold = pcall(cjson.decode, meta[2])
  if ok and type(fold) == 'table' and type(fold.upto) == 'number' then start = math.max(1, fold.upto - base) end
end
start = math.min(start, math.max(1, redis.call('LLEN', KEYS[1]) - 1))
local out = {meta[1], meta[2], meta[3], meta[4], base, start}
for _, turn in ipairs(redis.call('LRANGE', KEYS[1], 0, 0)) do out[#out + 1] = turn end
for _, turn in ipairs(redis.call('LRANGE', KEYS[1], start, -1)) do out[#out + 1] = turn end
return out
"""
# The lock's first try and the thread's read in one round trip (one slot, so on a cluster too). KEYS: those of
# ACQUIRE, then turns and meta; ARGV: those of ACQUIRE. Returns {0} when the thread is held, else the token followed
# by what LOAD returns.
ACQUIRE_AND_LOAD = (
    "local function acquire()\n"
    + ACQUIRE
    + "end\nlocal function load()\n"
    + LOAD.replace("KEYS[1]", "KEYS[5]").replace("KEYS[2]", "KEYS[6]")
    + "end\nlocal token = acquire()\nif token == 0 then return {0} end\n"
    + "local out = load()\ntable.insert(out, 1, token)\nreturn out\n"
)
# KEYS: turns, meta. ARGV: upto. Returns base, then the kept turns before absolute index upto (turn 0 aside).
FOLDED = """
local base = tonumber(redis.call('HGET', KEYS[2], 'base')) or 0
local out = {base}
local last = tonumber(ARGV[1]) - base - 1
if last >= 1 then
  for _, turn in ipairs(redis.call('LRANGE', KEYS[1], 1, last)) do out[#out + 1] = turn end
end
return out
"""
# KEYS: turns, meta, fence. ARGV: token or ''.
FORGET = FENCE + "return redis.call('DEL', KEYS[1], KEYS[2])"
# KEYS: turns, meta, fence. ARGV: token or '', keep, exchange or ''. LTRIM 0 -1 would keep everything: keep 0 deletes.
REWIND = (
    FENCE
    + """
local keep = tonumber(ARGV[2])
local base = tonumber(redis.call('HGET', KEYS[2], 'base')) or 0
if keep <= 0 then
  redis.call('DEL', KEYS[1])
  redis.call('HDEL', KEYS[2], 'base')
else
  redis.call('LTRIM', KEYS[1], 0, math.max(1, keep - base) - 1)
end
if ARGV[3] == 'open' and keep > 0 then
  redis.call('HSET', KEYS[2], 'open', cjson.encode({token = tonumber(ARGV[1]), question_index = keep - 1}))
end
return 1
"""
)
