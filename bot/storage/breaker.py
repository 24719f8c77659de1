"""The provider circuit breaker in Redis, so every bot process skips (and probes) a failing provider together."""

from __future__ import annotations

import time
from collections.abc import Callable

import redis.asyncio as redis

from bot.core.breaker import BREAKER_TTL_S, BreakerPolicy
from bot.storage.keys import Keys

# KEYS[1] breaker hash; ARGV: now, probe lease (s). Closed (no open_until): allow. Open: refuse until the cool-down
# ends; then exactly one caller gets the probe (probe_until), the others are refused until it expires.
_ALLOW = """
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
if open_until == 0 then return 1 end
local now = tonumber(ARGV[1])
local probe_until = tonumber(redis.call('HGET', KEYS[1], 'probe_until') or '0')
if now < open_until or now < probe_until then return 0 end
redis.call('HSET', KEYS[1], 'probe_until', now + tonumber(ARGV[2]))
return 1
"""

# KEYS[1]; ARGV: now, threshold, cool-down (s), ttl (s). A failed probe (already opened once) reopens at once.
_FAIL = """
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local opened = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0') ~= 0
if opened or failures >= tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'open_until', tonumber(ARGV[1]) + tonumber(ARGV[3]), 'probe_until', 0)
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
return failures
"""


class RedisCircuitBreaker:
    """Implements core.ports.CircuitBreaker over one hash per provider (Keys.provider_breaker)."""

    def __init__(
        self, client: redis.Redis, keys: Keys, policy: BreakerPolicy, clock: Callable[[], float] = time.time
    ) -> None:
        self._client = client
        self._keys = keys
        self._policy = policy
        self._clock = clock  # wall-clock seconds: processes on different hosts compare the same times
        self._allow = client.register_script(_ALLOW)
        self._fail = client.register_script(_FAIL)

    async def allow(self, provider: str) -> bool:
        key = self._keys.provider_breaker(provider)
        return bool(await self._allow(keys=[key], args=[self._clock(), self._policy.probe_lease_s]))

    async def record_success(self, provider: str) -> None:
        await self._client.delete(self._keys.provider_breaker(provider))

    async def record_failure(self, provider: str) -> None:
        policy = self._policy
        key = self._keys.provider_breaker(provider)
        await self._fail(keys=[key], args=[self._clock(), policy.failure_threshold, policy.cooldown_s, BREAKER_TTL_S])
