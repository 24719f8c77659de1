"""How hard Claude thinks before answering: off, a fixed budget, or adaptive (the model's own or a quick triage)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from bot.core.conversation import Turn
from bot.core.errors import ModelUnavailable
from bot.core.ports import ModelLimits, ModelRequest

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

    async def plan(self, mode: ThinkingMode | None, question: str, limits: ModelLimits | None, ask: Ask) -> Plan:
        """The thinking setting for one answer (kept for all of its tool rounds)."""
        mode = self.policy.default if mode is None else mode
        if mode == "off":
            return None
        if isinstance(mode, int):
            if limits is not None and limits.manual_thinking is False:
                return "adaptive" if limits.adaptive_thinking else None
            return mode
        if limits is not None and limits.adaptive_thinking:
            return "adaptive"
        if limits is not None and limits.manual_thinking is False:
            return None
        level = await self.triage(question, ask)
        return {"simple": None, "moderate": self.policy.medium_budget, "complex": self.policy.large_budget}[level]

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


def fit_thinking(plan: Plan, max_tokens: int, limits: ModelLimits | None, answer_tokens: int) -> tuple[Plan, int]:
    """A manual budget below max_tokens, with room for the answer, within the model's output limit."""
    if not isinstance(plan, int):
        return plan, max_tokens
    ceiling = limits.max_output_tokens if limits is not None and limits.max_output_tokens else None
    max_tokens = max(max_tokens, plan + answer_tokens)
    if ceiling is not None and max_tokens > ceiling:
        max_tokens = ceiling
        plan = min(plan, ceiling - answer_tokens)
    if plan < MIN_BUDGET:
        return None, max_tokens
    return plan, max_tokens
