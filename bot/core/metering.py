"""Every model call is admitted against the budgets first and recorded afterwards, with its cost.

Admission reserves the call's worst case atomically in the ledger (all its input, media by their real size, every
allowed output token, every search it may make and their results), so concurrent answers cannot overshoot a budget
by more than one request's worth. Near a limit a cheaper fallback model may be used instead of refusing, with the
request re-planned for it; past it the call is not made and the user is told when the budget resets. Every attempt
that reached the API is billed: a completed call at what it reported, a failed one at what it reported before it
failed, a stopped or cancelled one as far as it got.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from bot.core import texts
from bot.core.errors import BotError
from bot.core.estimates import CHARS_PER_TOKEN, estimate_request_tokens, web_searches_at_most, worst_case_input_tokens
from bot.core.events import AttemptFailed, ModelEvent, ModelTurnComplete, TextDelta, Usage, UsageSoFar
from bot.core.i18n import DAY_MONTH, MONTH_YEAR, fmt_date, money, percent, speaking, tr, trn
from bot.core.ports import ModelRequest
from bot.core.usage import Claim, PriceTable, UsageRecord, month_key

log = logging.getLogger(__name__)

# Re-plans a request for another model (thinking, effort, max_tokens: thinking.fit_to_model with its limits).
Refit = Callable[[ModelRequest, str], Awaitable[ModelRequest]]


# The largest budget an admin may set (/claude-budget, the Home tab): anything larger is a typo, and an "inf" would
# break the ledger's arithmetic.
MAX_BUDGET_USD = 1_000_000.0


class BudgetSpent(BotError):
    """The workspace's monthly or the person's daily budget is used up; no call was made."""


class UsageLedger(Protocol):
    async def record(self, record: UsageRecord, *, savings_usd: float = 0.0) -> None: ...

    async def month_spent(self, workspace_id: str, month: str) -> float: ...

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
        ttl_s: int = ...,  # how long a reservation holds is storage's to decide (RESERVATION_TTL_S)
    ) -> tuple[bool, str]: ...

    async def release(self, workspace_id: str, user_id: str, reservation_id: str) -> None: ...

    async def claim_once(self, claim: Claim) -> bool: ...


class BudgetStore(Protocol):
    """Per-workspace budgets an admin set with /claude-budget; they replace the settings' defaults."""

    async def budgets(self, workspace_id: str) -> dict[str, float | None]: ...

    async def set_budget(self, workspace_id: str, kind: str, usd: float | None) -> None: ...


class AdminNotifier(Protocol):
    async def notify_admins(self, workspace_id: str, text: str) -> None: ...


@dataclass(frozen=True, slots=True)
class BudgetPolicy:
    month_usd: float | None = None  # per workspace, calendar month (UTC)
    user_day_usd: float | None = None  # per person, calendar day (UTC)
    fallback_model: str | None = None  # used instead of refusing once spending passes `fallback_at`
    fallback_at: float = 0.9
    warn_at: float = 0.8


@dataclass(frozen=True, slots=True)
class CallContext:
    workspace_id: str
    user_id: str
    channel_id: str
    persona: str


@dataclass(frozen=True, slots=True)
class Admission:
    model: str
    reservation_id: str | None
    policy: BudgetPolicy | None = None  # as read when admitted: settling the call needs no second read
    request: ModelRequest | None = None  # the request as planned for `model` (None: as it was given)


def estimate_input_tokens(request: ModelRequest) -> int:
    """The request's input as estimated before the call (estimates.py): for a call billed before it reported."""
    return estimate_request_tokens(request)


class CallTally:
    """Follows one model call for billing: each attempt that reached the API and failed is handed to `on_failed`
    at once (billed before another attempt starts), and the attempt in flight is kept, for a call cancelled
    before it completes (a shutdown)."""

    def __init__(self, on_failed: Callable[[UsageSoFar], Awaitable[None]]) -> None:
        self._on_failed = on_failed
        self._in_flight: UsageSoFar | None = None
        self._unreported_chars = 0  # text since the in-flight attempt's last report, not in its output estimate

    async def observe(self, source: AsyncIterator[ModelEvent]) -> AsyncIterator[ModelEvent]:
        """The call's events. A failed attempt's report goes to `on_failed` (which may end the call by raising);
        in its place comes a report of nothing used yet, so a Stop does not bill the failed attempt again.
        However this ends (a Stop, BudgetSpent, a cancellation), the call's stream is closed, not left to the GC."""
        try:
            async for event in source:
                if isinstance(event, AttemptFailed):
                    self._in_flight, self._unreported_chars = None, 0
                    await self._on_failed(event)  # the adapter waits here: its next attempt starts after this
                    yield UsageSoFar(Usage(), event.model, event.provider)
                    continue
                if isinstance(event, UsageSoFar):
                    self._in_flight, self._unreported_chars = event, 0
                elif isinstance(event, TextDelta):
                    self._unreported_chars += len(event.text)
                elif isinstance(event, ModelTurnComplete):
                    self._in_flight = None
                yield event
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()

    def in_flight(self) -> UsageSoFar | None:
        """What the attempt in flight has used so far, its output estimated from what it wrote since its report."""
        if self._in_flight is None:
            return None
        usage = self._in_flight.usage
        extra = math.ceil(self._unreported_chars / CHARS_PER_TOKEN)
        return dataclasses.replace(
            self._in_flight, usage=dataclasses.replace(usage, output_tokens=usage.output_tokens + extra)
        )


class Metering:
    def __init__(
        self,
        ledger: UsageLedger,
        prices: PriceTable,
        policy: BudgetPolicy,
        *,
        notifier: AdminNotifier | None = None,
        budget_store: BudgetStore | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._ledger = ledger
        self._prices = prices
        self._default_policy = policy
        self._budget_store = budget_store
        self._notifier = notifier
        self._clock = clock

    async def policy(self, workspace_id: str) -> BudgetPolicy:
        """The settings' budgets, with whatever an admin set for this workspace on top ("off" removes a limit)."""
        if self._budget_store is None:
            return self._default_policy
        overrides = await self._budget_store.budgets(workspace_id)
        policy = self._default_policy
        if "month" in overrides:
            policy = dataclasses.replace(policy, month_usd=overrides["month"])
        if "user_day" in overrides:
            policy = dataclasses.replace(policy, user_day_usd=overrides["user_day"])
        return policy

    async def admit(self, call: CallContext, request: ModelRequest, refit: Refit | None = None) -> Admission:
        """Reserve the call's worst case, switching to the fallback model (re-planned for it by `refit`) near the
        limit; raise BudgetSpent past it."""
        now = self._clock()
        policy = await self.policy(call.workspace_id)
        if policy.month_usd is None and policy.user_day_usd is None:
            return Admission(model=request.model, reservation_id=None, policy=policy, request=request)
        if policy.fallback_model and policy.month_usd and policy.fallback_model != request.model:
            spent = await self._ledger.month_spent(call.workspace_id, month_key(now.date()))
            if spent + self.worst_case(request) > policy.fallback_at * policy.month_usd:
                fallback = policy.fallback_model
                request = await refit(request, fallback) if refit else dataclasses.replace(request, model=fallback)
        reservation = await self._reserve(call, request, policy, now)
        return Admission(model=request.model, reservation_id=reservation, policy=policy, request=request)

    async def renew(self, call: CallContext, admission: Admission | None, request: ModelRequest) -> Admission | None:
        """Another attempt of a call whose last one failed (and is billed): its reservation taken anew, so retries
        cannot overshoot a budget either; BudgetSpent if it no longer fits (no further attempt is made)."""
        if admission is None or admission.reservation_id is None or admission.policy is None:
            return admission
        await self.release(call, admission)
        reservation = await self._reserve(call, request, admission.policy, self._clock())
        return dataclasses.replace(admission, reservation_id=reservation)

    async def _reserve(self, call: CallContext, request: ModelRequest, policy: BudgetPolicy, now: datetime) -> str:
        granted, detail = await self._ledger.reserve(
            call.workspace_id,
            call.user_id,
            month=month_key(now.date()),
            day=now.date(),
            estimate_usd=self.worst_case(request),
            month_budget_usd=policy.month_usd,
            user_day_budget_usd=policy.user_day_usd,
        )
        if not granted:
            raise BudgetSpent(self._spent_message(detail, now, policy))
        return detail

    def worst_case(self, request: ModelRequest) -> float:
        """The most the call can cost: every input token it may read, every output token and search it may use,
        at the dearest of the models it may go to (an overload fallback is priced like the rest)."""
        tokens, searches = worst_case_input_tokens(request), web_searches_at_most(request)
        models = (request.model, *request.fallback_models)
        return max(self._prices.estimate(model, tokens, request.max_tokens, searches) for model in models)

    async def settle(
        self, call: CallContext, admission: Admission | None, model: str, usage: Usage, provider: str = "anthropic"
    ) -> None:
        """Record what the call really cost (at its provider's price), free its reservation, warn admins once."""
        await self._record(call, model, usage, provider)
        await self.release(call, admission)
        policy = admission.policy if admission is not None and admission.policy is not None else None
        await self._maybe_warn(call.workspace_id, policy or await self.policy(call.workspace_id))

    async def bill_attempts(self, call: CallContext, attempts: Sequence[UsageSoFar]) -> None:
        """Record attempts that reached the API without completing (the call's reservation covered them)."""
        for attempt in attempts:
            await self._record(call, attempt.model, attempt.usage, attempt.provider)

    async def _record(self, call: CallContext, model: str, usage: Usage, provider: str) -> None:
        cost, known = self._prices.cost(model, usage, provider)
        if not known:
            # Flagged as unpriced in reports, but budgets still count it, at the most expensive known price:
            # a model missing from the table must not mean unlimited spending.
            tokens_in = usage.input_tokens + usage.cache_write_tokens + usage.cache_read_tokens
            cost = self._prices.estimate(model, tokens_in, usage.output_tokens, usage.web_search_requests)
            log.warning("no price for model %s: counted at the highest known price and flagged unpriced", model)
        record = UsageRecord(
            workspace_id=call.workspace_id,
            user_id=call.user_id,
            channel_id=call.channel_id,
            persona=call.persona,
            model=model,
            usage=usage,
            cost_usd=cost,
            priced=known,
            at=self._clock(),
            provider=provider,
        )
        await self._ledger.record(record, savings_usd=self._prices.cache_savings(model, usage, provider))

    async def release(self, call: CallContext, admission: Admission | None) -> None:
        if admission is not None and admission.reservation_id:
            await self._ledger.release(call.workspace_id, call.user_id, admission.reservation_id)

    async def _maybe_warn(self, workspace_id: str, policy: BudgetPolicy) -> None:
        budget = policy.month_usd
        if budget is None or self._notifier is None:
            return
        month = month_key(self._clock().date())
        spent = await self._ledger.month_spent(workspace_id, month)
        if spent >= policy.warn_at * budget and await self._ledger.claim_once(
            Claim("budget_warning", workspace_id, month)
        ):
            with speaking(""):  # several admins, each their own language: the workspace default
                warning = tr(
                    texts.BUDGET_WARNING,
                    spent=money(spent),
                    budget=money(budget),
                    month=fmt_date(self._clock().date(), MONTH_YEAR),
                    share=percent(spent / budget),
                )
            await self._notifier.notify_admins(workspace_id, warning)

    @staticmethod
    def _spent_message(which: str, now: datetime, policy: BudgetPolicy) -> str:
        if which == "user" and policy.user_day_usd is not None:
            midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
            hours = (midnight - now).total_seconds() / 3600
            return trn(texts.BUDGET_USER_SPENT, round(hours), budget=money(policy.user_day_usd))
        first_of_next = (now.replace(day=28) + timedelta(days=4)).replace(day=1)
        amount = tr(texts.BUDGET_AMOUNT, amount=money(policy.month_usd)) if policy.month_usd is not None else ""
        return tr(
            texts.BUDGET_MONTH_SPENT,
            month=fmt_date(now.date(), MONTH_YEAR),
            amount=amount,
            reset=fmt_date(first_of_next.date(), DAY_MONTH),
        )
