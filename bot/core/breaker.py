"""The circuit breaker's rules, and its in-memory twin (the Redis one shares them through BreakerPolicy)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

# A provider's breaker state is dropped this long after its last failure, so Redis keeps none for healthy providers.
BREAKER_TTL_S = 3600


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """`failure_threshold` failed calls in a row open the breaker for `cooldown_s`; then one probe call may go."""

    failure_threshold: int = 3
    cooldown_s: float = 30.0

    @property
    def probe_lease_s(self) -> float:
        """How long a probe may take before another process may probe instead (a probe that died says nothing)."""
        return max(self.cooldown_s, 1.0)


@dataclass
class _State:
    failures: int = 0
    open_until: float = 0.0
    probe_until: float = 0.0


class MemoryCircuitBreaker:
    """One process's breaker: the same rules as RedisCircuitBreaker, for tests and the terminal chat."""

    def __init__(self, policy: BreakerPolicy, clock: Callable[[], float] = time.time) -> None:
        self._policy = policy
        self._clock = clock
        self._states: dict[str, _State] = {}

    async def allow(self, provider: str) -> bool:
        state = self._states.get(provider)
        if state is None or state.open_until == 0.0:
            return True
        now = self._clock()
        if now < state.open_until or now < state.probe_until:
            return False
        state.probe_until = now + self._policy.probe_lease_s  # half-open: this caller is the probe
        return True

    async def record_success(self, provider: str) -> None:
        self._states.pop(provider, None)

    async def record_failure(self, provider: str) -> None:
        state = self._states.setdefault(provider, _State())
        state.failures += 1
        half_open = state.open_until != 0.0
        if half_open or state.failures >= self._policy.failure_threshold:
            state.open_until = self._clock() + self._policy.cooldown_s
            state.probe_until = 0.0
