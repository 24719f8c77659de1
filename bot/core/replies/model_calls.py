"""The "call the model" step of an answer: planned, admitted against the budgets, stoppable, settled."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
from collections.abc import AsyncIterator, Mapping

from bot.core.answers import Interrupt, ShownModelEvent, shown_events, stoppable_call
from bot.core.context_window import ContextWindow
from bot.core.conversation import IncomingMessage, TextBlock, ThinkingBlock
from bot.core.errors import StorageUnavailable
from bot.core.events import ModelTurnComplete
from bot.core.metering import Admission, CallContext, Metering
from bot.core.personas import Persona
from bot.core.ports import LanguageModel, ModelRequest
from bot.core.prompts import ReplyConfig, persona_thinking
from bot.core.thinking import Plan, ThinkingPlanner, fit_thinking

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

    async def plan_thinking(self, call: CallContext, persona: Persona, message: IncomingMessage) -> tuple[Plan, int]:
        """Decided once per answer: thinking must stay the same across the answer's tool rounds."""
        max_tokens = persona.max_tokens or self._config.max_tokens
        mode = persona.thinking
        if self._thinking is None:
            return persona_thinking(persona), max_tokens
        if (mode if mode is not None else self._thinking.policy.default) == "off":
            return None, max_tokens  # no need to ask the Models API what the model supports
        model = persona.model or self._config.model
        limits = await self._context.limits(model) if self._context is not None else None
        plan = await self._thinking.plan(mode, message.text, limits, functools.partial(self.side_call, call))
        return fit_thinking(plan, max_tokens, limits, self._config.max_tokens)

    async def metered(
        self, call: CallContext, request: ModelRequest, message: IncomingMessage | None = None
    ) -> AsyncIterator[ShownModelEvent]:
        """One model call within the budget: reserved before, settled after, released if it fails.

        For an answer that can be stopped (`message` has an id), a Stop ends the call, billed for what it used.
        """
        admission = await self._admit(call, request)
        if admission is not None and admission.model != request.model:
            request = dataclasses.replace(request, model=admission.model)
        complete: ModelTurnComplete | None = None
        try:
            async for event in self._model_events(message, request):
                if isinstance(event, ModelTurnComplete):
                    complete = event
                yield event
        finally:
            if complete is None and self._metering is not None:
                # Never let a storage blip here hide the model error that brought us here.
                with contextlib.suppress(StorageUnavailable):
                    await self._metering.release(call, admission)
        assert complete is not None  # the model port always ends with it or raises
        await self._settle(call, admission, complete)

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

    def _model_events(self, message: IncomingMessage | None, request: ModelRequest) -> AsyncIterator[ShownModelEvent]:
        """The model call's events; for an answer that can be stopped, a Stop ends the call (billed so far)."""
        interrupt = self._interrupts.get(message.answer_id or "") if message is not None else None
        if interrupt is None:
            return shown_events(self._model.stream(request))
        return stoppable_call(interrupt, self._model.stream(request), request)

    async def _settle(self, call: CallContext, admission: Admission | None, complete: ModelTurnComplete) -> None:
        """Recording must never cost the user their answer: a storage blip is logged, not raised."""
        if self._metering is None:
            return
        try:
            await self._metering.settle(call, admission, complete.model, complete.usage, complete.provider)
        except StorageUnavailable:
            log.error("could not record usage for %s (%s); the answer goes on", call.workspace_id, complete.model)

    async def _admit(self, call: CallContext, request: ModelRequest) -> Admission | None:
        return await self._metering.admit(call, request) if self._metering is not None else None
