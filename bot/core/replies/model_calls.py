"""The "call the model" step of an answer: planned for its model, admitted against the budgets, stoppable, billed.

Each call is planned for the model that takes it (thinking.fit_to_model): the persona's, or the budget's fallback,
re-planned on admission; the adapters re-plan an overload fallback or another provider the same way. Every attempt
that reached the API is billed: completed, failed (as the API reported it), stopped, or cancelled by a shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from bot.core.answers import Interrupt, ShownModelEvent, shown_events, stoppable_call
from bot.core.context_window import ContextWindow
from bot.core.conversation import IncomingMessage, TextBlock, ThinkingBlock
from bot.core.errors import StorageUnavailable
from bot.core.events import ModelEvent, ModelTurnComplete, UsageSoFar
from bot.core.metering import Admission, CallContext, CallTally, Metering
from bot.core.personas import Persona
from bot.core.ports import LanguageModel, ModelLimits, ModelRequest
from bot.core.prompts import ReplyConfig, persona_thinking
from bot.core.replies.late_records import LateRecords
from bot.core.thinking import Plan, ThinkingPlanner, fit_to_model

log = logging.getLogger(__name__)


class ModelCalls:
    """Every model call of an answer goes through here, so none escapes the budget or the Stop button.

    `interrupts` is shared with the use case: the Stop of each answer running in this process, by answer id.
    """

    def __init__(
        self,
        model: LanguageModel,
        config: ReplyConfig,
        *,
        metering: Metering | None,
        context: ContextWindow | None,
        thinking: ThinkingPlanner | None,
        interrupts: Mapping[str, Interrupt],
    ) -> None:
        self._model = model
        self._config = config
        self._metering = metering
        self._context = context
        self._thinking = thinking
        self._interrupts = interrupts
        self.late = LateRecords()  # usage refused by storage, recorded once it is back

    async def plan_thinking(
        self, call: CallContext, persona: Persona, message: IncomingMessage
    ) -> tuple[Plan, int | None]:
        """The thinking the answer wants, and the triage's budget for a model without adaptive thinking: decided
        once, since thinking must stay the same across the answer's tool rounds; each call fits them to its model."""
        mode = persona.thinking
        if self._thinking is None:
            return persona_thinking(persona), None
        if (mode if mode is not None else self._thinking.policy.default) == "off":
            return None, None  # no need to ask the Models API what the model supports
        limits = await self._limits(persona.model or self._config.model)
        return await self._thinking.intend(mode, message.text, limits, functools.partial(self.side_call, call))

    async def metered(
        self, call: CallContext, request: ModelRequest, message: IncomingMessage | None = None
    ) -> AsyncIterator[ShownModelEvent]:
        """One model call within the budget: planned for its model, reserved before, billed after.

        For an answer that can be stopped (`message` has an id), a Stop ends the call, billed for what it used.
        A call that fails is billed for the attempts the API reported, one cancelled (shutdown) as far as it got.
        """
        request = await self.fitted(request, request.model)
        admission = await self._admit(call, request)
        if admission is not None and admission.request is not None:
            request = admission.request  # the budget's fallback model, re-planned for it
        bill = _Bill(self._metering, call, admission, request, self.late)
        tally = CallTally(bill.attempt_failed)
        complete: ModelTurnComplete | None = None
        try:
            async for event in self._model_events(message, request, tally.observe(self._model.stream(request))):
                if isinstance(event, ModelTurnComplete):
                    complete = event
                yield event
        except BaseException:
            if complete is None:
                # Shielded: a shutdown's cancellation must not cancel the billing of the call it cancelled.
                await asyncio.shield(bill.unfinished(tally.in_flight()))
            raise
        assert complete is not None  # the model port always ends with it or raises
        await bill.completed(complete)

    async def fitted(self, request: ModelRequest, model: str) -> ModelRequest:
        """The request re-planned for `model` from what the Models API says of it (thinking, effort, max_tokens)."""
        return fit_to_model(request, model, await self._limits(model))

    async def side_call(self, call: CallContext, request: ModelRequest) -> str:
        """A small helper call (summary, triage) on a cheap model: metered like any other, text returned whole."""
        text = ""
        async for event in self.metered(call, request):
            if isinstance(event, ModelTurnComplete):
                text = "".join(b.text for b in event.blocks if isinstance(b, TextBlock))
        return text

    def log_thinking(self, message: IncomingMessage, complete: ModelTurnComplete) -> None:
        if self._thinking is None or not self._thinking.policy.log_thinking:
            return
        for block in complete.blocks:
            if isinstance(block, ThinkingBlock):
                log.info("thinking in %s/%s: %s", message.key.workspace_id, message.key.channel_id, block.thinking)

    def _model_events(
        self, message: IncomingMessage | None, request: ModelRequest, source: AsyncIterator[ModelEvent]
    ) -> AsyncIterator[ShownModelEvent]:
        """The model call's events; for an answer that can be stopped, a Stop ends the call (billed so far)."""
        interrupt = self._interrupts.get(message.answer_id or "") if message is not None else None
        if interrupt is None:
            return shown_events(source)
        return stoppable_call(interrupt, source, request)

    async def _admit(self, call: CallContext, request: ModelRequest) -> Admission | None:
        if self._metering is None:
            return None
        return await self._metering.admit(call, request, self.fitted)

    async def _limits(self, model: str) -> ModelLimits | None:
        return await self._context.limits(model) if self._context is not None else None


@dataclass
class _Bill:
    """One call's billing: its reservation (taken anew before each retry) and every attempt that reached the API.

    Recording never costs the user their answer: a storage blip is logged, not raised.
    """

    metering: Metering | None
    call: CallContext
    admission: Admission | None
    request: ModelRequest
    late: LateRecords

    async def attempt_failed(self, attempt: UsageSoFar) -> None:
        """Billed at once, before the adapter tries again; the next attempt needs its own reservation, and
        BudgetSpent (raised here) ends the call instead."""
        if self.metering is None:
            return
        try:
            await self.metering.bill_attempts(self.call, [attempt])
        except StorageUnavailable:
            log.warning("could not record a failed attempt for %s yet; retrying", self.call.workspace_id)
            self.late.retry(functools.partial(self.metering.bill_attempts, self.call, [attempt]), "a failed attempt")
        try:
            self.admission = await self.metering.renew(self.call, self.admission, self.request)
        except StorageUnavailable:
            log.error("could not renew the reservation for %s (%s)", self.call.workspace_id, attempt.model)

    async def completed(self, complete: ModelTurnComplete) -> None:
        if self.metering is None:
            return
        try:
            await self.metering.settle(self.call, self.admission, complete.model, complete.usage, complete.provider)
        except StorageUnavailable:
            log.warning(
                "could not record usage for %s yet; the answer goes on, the record follows", self.call.workspace_id
            )
            settle = self.metering.settle
            args = (self.call, self.admission, complete.model, complete.usage, complete.provider)
            self.late.retry(functools.partial(settle, *args), "a call's usage")

    async def unfinished(self, in_flight: UsageSoFar | None) -> None:
        """A call that failed or was cancelled: the attempt in flight billed as far as it got, the reservation
        freed. Never raises over the error that brought us here."""
        if self.metering is None:
            return
        try:
            await self.metering.bill_attempts(self.call, [in_flight] if in_flight is not None else [])
        except StorageUnavailable:
            log.warning("could not record the usage of an unfinished call for %s yet; retrying", self.call.workspace_id)
            attempts = [in_flight] if in_flight is not None else []
            self.late.retry(functools.partial(self.metering.bill_attempts, self.call, attempts), "an unfinished call")
        with contextlib.suppress(StorageUnavailable):
            await self.metering.release(self.call, self.admission)
