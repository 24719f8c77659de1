"""How hard Claude thinks before answering: off, a fixed budget, or adaptive (the model's own or a quick triage)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from bot.core.conversation import Turn
from bot.core.errors import ModelUnavailable
from bot.core.ports import CallIntent, ModelLimits, ModelRequest

log = logging.getLogger(__name__)

MIN_BUDGET = 1_024  # the API's floor for budget_tokens
ThinkingMode = Literal["off", "adaptive"] | int
Plan = str | int | None  # None: no thinking; "adaptive"; or a manual budget in tokens

TRIAGE_INSTRUCTIONS = """You decide how much careful reasoning a chat request needs before it is answered.
simple: greetings, quick facts, rewording, short how-to, anything answerable at once.
moderate: explanations with a few steps, small code changes, comparisons, planning with some constraints.
complex: debugging, multi-step maths or logic, architecture and trade-off decisions, reviewing long code, \
anything where a hasty answer is likely wrong.
Reply with exactly one word: simple, moderate or complex."""


@dataclass(frozen=True, slots=True)
class ThinkingPolicy:
    default: ThinkingMode = "off"  # for personas that do not say
    triage_model: str = "claude-haiku-4-5"
    medium_budget: int = 4_096
    large_budget: int = 16_384
    log_thinking: bool = False  # debugging only: thinking text goes to the logs, never to Slack


Ask = Callable[[ModelRequest], Awaitable[str]]


class ThinkingPlanner:
    def __init__(self, policy: ThinkingPolicy) -> None:
        self.policy = policy

    async def intend(
        self, mode: ThinkingMode | None, question: str, limits: ModelLimits | None, ask: Ask
    ) -> tuple[Plan, int | None]:
        """The thinking one answer wants (kept for all of its tool rounds), whichever model takes each call, and
        the manual budget for a model without adaptive thinking: triaged only when the persona's model needs it."""
        mode = self.policy.default if mode is None else mode
        if mode == "off":
            return None, None
        if isinstance(mode, int):
            return mode, None
        if limits is not None and (limits.adaptive_thinking or limits.manual_thinking is False):
            return "adaptive", None  # the model thinks adaptively, or cannot take a budget: nothing to triage
        level = await self.triage(question, ask)
        return "adaptive", {"simple": None, "moderate": self.policy.medium_budget, "complex": self.policy.large_budget}[
            level
        ]

    async def plan(self, mode: ThinkingMode | None, question: str, limits: ModelLimits | None, ask: Ask) -> Plan:
        """The thinking setting for one answer on the model `limits` describe."""
        wanted, manual = await self.intend(mode, question, limits, ask)
        return thinking_for(wanted, manual, limits)

    async def triage(self, question: str, ask: Ask) -> str:
        """simple / moderate / complex from a cheap model; a failure means no thinking rather than no answer."""
        request = ModelRequest(
            model=self.policy.triage_model,
            max_tokens=5,
            system=(TRIAGE_INSTRUCTIONS,),
            turns=(Turn.user(f"<request>\n{question[:8_000]}\n</request>"),),
        )
        try:
            answer = (await ask(request)).strip().lower()
        except ModelUnavailable as error:
            log.warning("thinking triage failed (%s); answering without extended thinking", error.user_message)
            return "simple"
        for level in ("complex", "moderate", "simple"):
            if answer.startswith(level):
                return level
        log.info("thinking triage gave an unexpected answer %r; treating it as moderate", answer[:20])
        return "moderate"


def thinking_for(wanted: Plan, manual_budget: int | None, limits: ModelLimits | None) -> Plan:
    """What a model takes of the thinking wanted: a budget where it takes budgets, else adaptive, else none.

    Adaptive thinking wanted on a model that only takes a budget uses the triage's budget (none if no triage ran,
    e.g. on a fallback model: an answer without thinking beats a refused request). Unknown limits (a provider
    without the Models API): a budget is sent as wanted, adaptive falls back to the triage's budget.
    """
    if wanted is None or wanted == "off":
        return None
    if isinstance(wanted, int):
        if limits is not None and limits.manual_thinking is False:
            return "adaptive" if limits.adaptive_thinking else None
        return wanted
    if limits is not None and limits.adaptive_thinking:
        return "adaptive"
    if limits is not None and limits.manual_thinking is False:
        return None
    return manual_budget


def fit_thinking(plan: Plan, max_tokens: int, limits: ModelLimits | None, answer_tokens: int) -> tuple[Plan, int]:
    """A manual budget below max_tokens, with room for the answer, within the model's output limit."""
    ceiling = limits.max_output_tokens if limits is not None and limits.max_output_tokens else None
    if not isinstance(plan, int):
        return plan, min(max_tokens, ceiling) if ceiling is not None else max_tokens
    max_tokens = max(max_tokens, plan + answer_tokens)
    if ceiling is not None and max_tokens > ceiling:
        max_tokens = ceiling
        plan = min(plan, ceiling - answer_tokens)
    if plan < MIN_BUDGET:
        return None, max_tokens
    return plan, max_tokens


def intent_of(request: ModelRequest) -> CallIntent:
    """What a request built without an intent wants: its own settings."""
    if request.intent is not None:
        return request.intent
    budget = request.thinking if isinstance(request.thinking, int) else 0
    answer = request.max_tokens - budget if budget < request.max_tokens else request.max_tokens
    return CallIntent(answer_tokens=answer, thinking=request.thinking, effort=request.effort)


def fit_to_model(request: ModelRequest, model: str, limits: ModelLimits | None) -> ModelRequest:
    """The request as `model` takes it: thinking, effort and max_tokens re-planned from what the call wants.

    Called wherever the model changes (the persona's, a budget fallback, an overload fallback, another provider),
    so a fallback never gets settings planned for another model (adaptive thinking where it is unknown: a 400).
    """
    intent = intent_of(request)
    plan = thinking_for(intent.thinking, intent.manual_budget, limits)
    plan, max_tokens = fit_thinking(plan, intent.answer_tokens, limits, intent.answer_tokens)
    effort = intent.effort
    if effort is not None and limits is not None and limits.efforts is not None and effort not in limits.efforts:
        log.info("%s does not take effort %r; sent without it", model, effort)
        effort = None
    return dataclasses.replace(request, model=model, thinking=plan, max_tokens=max_tokens, effort=effort, intent=intent)


def refit(request: ModelRequest, model: str, limits: ModelLimits | None) -> ModelRequest:
    """fit_to_model for an adapter: a request already planned for `model` stays as it is when the model's limits
    cannot be read right now (they were known to whoever planned it, and guessing could only lose its thinking)."""
    if limits is None and model == request.model:
        return request
    return fit_to_model(request, model, limits)
