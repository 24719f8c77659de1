"""The in-memory twin of the usage ledger's Metering side (records, month totals, reservations, claims)."""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from bot.core.errors import StorageUnavailable
from bot.core.usage import Claim, UsageRecord
from bot.storage.expiring import Expiring as _Expiring
from bot.storage.keys import CLAIM_TTL_S


@dataclass
class _Reservation:
    workspace_id: str
    user_id: str
    micros: int
    expires_at: float


class MemoryUsageLedger:
    """The part of the usage ledger that Metering uses: records, month totals, atomic reservations, one-time claims.

    Amounts are kept in micro-dollars, as in Redis, so a budget check rounds the same way in both.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.records: list[UsageRecord] = []
        self._month_micros: dict[tuple[str, str], int] = {}
        self._user_day_micros: dict[tuple[str, str, date], int] = {}
        self._reservations: dict[str, _Reservation] = {}
        self._claims = _Expiring(clock)
        self.up = True  # a test sets False to see how callers meet an outage of the ledger

    async def record(self, record: UsageRecord, *, savings_usd: float = 0.0) -> None:
        if not self.up:
            raise StorageUnavailable()
        self.records.append(record)
        micros = round(record.cost_usd * 1_000_000)
        month = record.at.strftime("%Y-%m")
        self._month_micros[(record.workspace_id, month)] = (
            self._month_micros.get((record.workspace_id, month), 0) + micros
        )
        day_key = (record.workspace_id, record.user_id, record.at.date())
        self._user_day_micros[day_key] = self._user_day_micros.get(day_key, 0) + micros

    async def month_spent(self, workspace_id: str, month: str) -> float:
        return self._month_micros.get((workspace_id, month), 0) / 1_000_000

    def _held(self, workspace_id: str, user_id: str | None = None) -> int:
        now = self._clock()
        return sum(
            r.micros
            for r in self._reservations.values()
            if r.expires_at > now and r.workspace_id == workspace_id and user_id in (None, r.user_id)
        )

    async def reserve(
        self,
        workspace_id: str,
        user_id: str,
        *,
        month: str,
        day: date,
        estimate_usd: float,
        month_budget_usd: float | None,
        user_day_budget_usd: float | None,
        ttl_s: int = 600,
    ) -> tuple[bool, str]:
        """Check and hold in one step (no await in between), so concurrent callers cannot both pass a full budget."""
        estimate = max(0, math.ceil(estimate_usd * 1_000_000))
        if month_budget_usd is not None:
            spent = self._month_micros.get((workspace_id, month), 0)
            if spent + self._held(workspace_id) + estimate > round(month_budget_usd * 1_000_000):
                return False, "workspace"
        if user_day_budget_usd is not None:
            spent = self._user_day_micros.get((workspace_id, user_id, day), 0)
            if spent + self._held(workspace_id, user_id) + estimate > round(user_day_budget_usd * 1_000_000):
                return False, "user"
        reservation_id = f"{secrets.token_hex(8)}:{estimate}"
        self._reservations[reservation_id] = _Reservation(
            workspace_id, user_id, estimate, self._clock() + max(1, ttl_s)
        )
        return True, reservation_id

    async def release(self, workspace_id: str, user_id: str, reservation_id: str) -> None:
        self._reservations.pop(reservation_id, None)

    async def claim_once(self, claim: Claim) -> bool:
        if self._claims.get(claim) is not None:
            return False
        self._claims.set(claim, True, CLAIM_TTL_S[claim.kind])
        return True
