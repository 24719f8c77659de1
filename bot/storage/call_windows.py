"""Sliding windows of Web API calls in Redis, shared by every bot process, with promised calls set aside.

One script per question, so a decision costs one round trip and no two processes can both take the last call.
Each bucket has three keys (bot/storage/keys.py `call_window`): a sorted set of call times (the window), a sorted
set of promised calls scored by when they lapse, and a Retry-After hold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import redis.asyncio as redis

from bot.core.ports import Allowance, Granted
from bot.storage.keys import Keys
from bot.storage.redis_store import _translated

# Shared by the scripts below. keep_window: a window's key lives until its newest call leaves the window (a call
# granted ahead by _TAKE_SOME counts to its end). room_in: 0 if `need` more calls fit beside `used`, else ms until
# enough of the oldest calls have left the window.
_WINDOW_HELPERS = """
local function keep_window(calls, now, window)
  local newest = tonumber(redis.call('ZRANGE', calls, -1, -1, 'WITHSCORES')[2]) or now
  redis.call('PEXPIRE', calls, math.max(newest - now, 0) + window + 1000)
end
local function room_in(calls, used, need, limit, window, now)
  local excess = used + need - limit
  if excess <= 0 then return 0 end
  if excess > used then return window end
  local oldest = redis.call('ZRANGE', calls, excess - 1, excess - 1, 'WITHSCORES')
  return math.max(tonumber(oldest[2]) + window - now, 1)
end
"""
# KEYS: per bucket its window, promises and hold. ARGV: mode ("take" | "promise" | "release"), keep (-1: none),
# the promises a take settles and the members a promise adds (a take: the times in ms of calls already made on
# promises it settles), each joined by "\n"; promise ttl ms; the calls a take gives back unspent (granted ahead by
# _TAKE_SOME), joined by "\n"; then per bucket: limit, window ms.
# Returns 0 when granted, else milliseconds until asking again may succeed.
_WINDOWS = (
    _WINDOW_HELPERS
    + """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local mode, keep, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[5])
local function lines(text)
  local found = {}
  for m in string.gmatch(text, '[^\\n]+') do found[#found + 1] = m end
  return found
end
local settle, members, given_back = lines(ARGV[3]), lines(ARGV[4]), lines(ARGV[6])
if mode == 'release' then
  for i = 0, #KEYS / 3 - 1 do
    for _, m in ipairs(settle) do redis.call('ZREM', KEYS[3 * i + 2], m) end
  end
  return 0
end
local wait = 0
local n = #KEYS / 3
for i = 0, n - 1 do
  local calls, promised_key, hold = KEYS[3 * i + 1], KEYS[3 * i + 2], KEYS[3 * i + 3]
  local limit, window = tonumber(ARGV[7 + 2 * i]), tonumber(ARGV[8 + 2 * i])
  local held = tonumber(redis.call('GET', hold) or '0')
  if held > now then wait = math.max(wait, held - now) end
  for _, m in ipairs(given_back) do redis.call('ZREM', calls, m) end
  redis.call('ZREMRANGEBYSCORE', calls, '-inf', now - window)
  redis.call('ZREMRANGEBYSCORE', promised_key, '-inf', now)
  local used = redis.call('ZCARD', calls)
  local need = 1
  local promising = mode == 'promise' and i == 0  -- a promise's further buckets each give a call now
  if promising then need = #members end
  if keep >= 0 and (promising or mode ~= 'promise') then
    need = need + keep + redis.call('ZCARD', promised_key)
    for _, m in ipairs(settle) do
      if redis.call('ZSCORE', promised_key, m) then need = need - 1 end
    end
  end
  wait = math.max(wait, room_in(calls, used, need, limit, window, now))
end
if wait > 0 then return wait end
for i = 0, n - 1 do
  local calls, promised_key = KEYS[3 * i + 1], KEYS[3 * i + 2]
  local window = tonumber(ARGV[8 + 2 * i])
  if mode == 'promise' and i == 0 then
    for _, m in ipairs(members) do redis.call('ZADD', promised_key, now + ttl, m) end
    redis.call('PEXPIRE', promised_key, ttl + 1000)
  else
    local used = redis.call('ZCARD', calls)
    redis.call('ZADD', calls, now, now .. '-' .. used)
    for k, m in ipairs(members) do
      local at = tonumber(m)
      if at and at > now - window then redis.call('ZADD', calls, at, at .. '-' .. used .. '-' .. k) end
    end
    keep_window(calls, now, window)
    for _, m in ipairs(settle) do redis.call('ZREM', promised_key, m) end
  end
end
return 0
"""
)
# KEYS: as _WINDOWS. ARGV: keep, most, hold ms, then per bucket: limit, window ms. Returns {granted, ms to wait, the
# names of the calls granted ahead...}: `most` calls while every bucket stays at most half used with them (and `keep`,
# and the promised), else one by take's rule for `keep`, else {0, wait}. The calls beyond the first are scored `hold`
# ms ahead, the latest they may be made, under names a later take can give back unspent.
_TAKE_SOME = (
    _WINDOW_HELPERS
    + """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local keep, most, hold = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local n = #KEYS / 3
local wait, granted = 0, most
for i = 0, n - 1 do
  local calls, promised_key, hold_key = KEYS[3 * i + 1], KEYS[3 * i + 2], KEYS[3 * i + 3]
  local limit, window = tonumber(ARGV[4 + 2 * i]), tonumber(ARGV[5 + 2 * i])
  local held = tonumber(redis.call('GET', hold_key) or '0')
  if held > now then wait = math.max(wait, held - now) end
  redis.call('ZREMRANGEBYSCORE', calls, '-inf', now - window)
  redis.call('ZREMRANGEBYSCORE', promised_key, '-inf', now)
  local used = redis.call('ZCARD', calls)
  local reserved = keep + redis.call('ZCARD', promised_key)
  if used + reserved + most > math.floor(limit / 2) then granted = 1 end
  wait = math.max(wait, room_in(calls, used, reserved + 1, limit, window, now))
end
if wait > 0 then return {0, wait} end
local first_used = redis.call('ZCARD', KEYS[1])
local out = {granted, 0}
for k = 2, granted do out[#out + 1] = 'ahead-' .. (now + hold) .. '-' .. first_used .. '-' .. k end
for i = 0, n - 1 do
  local calls, window = KEYS[3 * i + 1], tonumber(ARGV[5 + 2 * i])
  redis.call('ZADD', calls, now, now .. '-' .. redis.call('ZCARD', calls))
  for k = 3, #out do redis.call('ZADD', calls, now + hold, out[k]) end
  keep_window(calls, now, window)
end
return out
"""
)
_HOLD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ms = now + tonumber(ARGV[1])
local held = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ms > held then redis.call('SET', KEYS[1], until_ms, 'PX', tonumber(ARGV[1]) + 1000) end
return 1
"""


class RedisCallWindows:
    """CallWindows in Redis (bot/core/ports.py)."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys
        self._windows: Any = client.register_script(_WINDOWS)
        self._take_some: Any = client.register_script(_TAKE_SOME)
        self._hold: Any = client.register_script(_HOLD)

    @_translated
    async def take(
        self,
        allowances: Sequence[Allowance],
        *,
        keep: int | None = None,
        settle: Sequence[str] = (),
        spent: Sequence[float] = (),
        give_back: Sequence[str] = (),
    ) -> float:
        made = [str(int(at * 1000)) for at in spent]
        return await self._run("take", allowances, keep=keep, settle=settle, members=made, give_back=give_back)

    @_translated
    async def take_some(self, allowances: Sequence[Allowance], *, keep: int, most: int, hold_s: float) -> Granted:
        keys = [key for a in allowances for key in self._keys_of(a)]
        args: list[Any] = [keep, most, math.ceil(hold_s * 1000)]
        for allowance in allowances:
            args += [allowance.limit, math.ceil(allowance.window_s * 1000)]
        granted, wait_ms, *ahead = await self._take_some(keys=keys, args=args)
        names = tuple(name.decode() if isinstance(name, bytes) else str(name) for name in ahead)
        return Granted(int(granted), float(wait_ms) / 1000, names)

    @_translated
    async def promise(
        self, allowance: Allowance, members: Sequence[str], *, keep: int, ttl_s: float, now: Sequence[Allowance] = ()
    ) -> bool:
        wait = await self._run("promise", [allowance, *now], keep=keep, members=members, ttl_s=ttl_s)
        return wait <= 0

    @_translated
    async def release(self, allowance: Allowance, members: Sequence[str]) -> None:
        await self._run("release", [allowance], keep=None, settle=members)

    @_translated
    async def hold_off(self, allowance: Allowance, seconds: float) -> None:
        await self._hold(keys=[self.keys.call_hold(*self._where(allowance))], args=[math.ceil(seconds * 1000)])

    @staticmethod
    def _where(allowance: Allowance) -> tuple[str, str, str]:
        return allowance.method, allowance.workspace_id, allowance.channel_id

    def _keys_of(self, allowance: Allowance) -> tuple[str, str, str]:
        where = self._where(allowance)
        return self.keys.call_window(*where), self.keys.call_promises(*where), self.keys.call_hold(*where)

    async def _run(
        self,
        mode: str,
        allowances: Sequence[Allowance],
        *,
        keep: int | None,
        settle: Sequence[str] = (),
        members: Sequence[str] = (),
        ttl_s: float = 0.0,
        give_back: Sequence[str] = (),
    ) -> float:
        keys = [key for a in allowances for key in self._keys_of(a)]
        ttl_ms = math.ceil(ttl_s * 1000)
        args: list[Any] = [mode, -1 if keep is None else keep, "\n".join(settle), "\n".join(members), ttl_ms]
        args.append("\n".join(give_back))
        for allowance in allowances:
            args += [allowance.limit, math.ceil(allowance.window_s * 1000)]
        wait_ms = await self._windows(keys=keys, args=args)
        return float(wait_ms) / 1000
