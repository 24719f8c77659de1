"""Builds the model request: stable instructions first, per-request facts last (so a cached prefix survives)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.core.conversation import Turn
from bot.core.ports import ModelRequest

BASE_INSTRUCTIONS = (
    "You are Claude, an AI assistant made by Anthropic, working inside a Slack workspace. "
    "People talk to you in Slack threads and direct messages; each thread is one conversation. "
    "Answer helpfully, accurately and concisely; say so when you are unsure."
)

SLACK_FORMATTING = (
    "Your reply is shown in Slack. Use Markdown sparingly: short paragraphs, bullet lists, **bold** for key "
    "points, fenced code blocks for code. Tables and horizontal rules do not render well in Slack; prefer "
    "lists. Keep Slack mentions such as <@U123> exactly as written."
)


@dataclass(frozen=True, slots=True)
class ReplyConfig:
    model: str
    max_tokens: int
    fallback_models: tuple[str, ...] = ()


def merge_consecutive_turns(turns: Sequence[Turn]) -> tuple[Turn, ...]:
    """A failed answer leaves two user turns in a row; join them so the request alternates roles."""
    merged: list[Turn] = []
    for turn in turns:
        if merged and merged[-1].role == turn.role:
            previous = merged[-1]
            merged[-1] = Turn(role=turn.role, blocks=previous.blocks + turn.blocks, author_id=turn.author_id)
        else:
            merged.append(turn)
    while merged and merged[0].role != "user":
        merged.pop(0)
    return tuple(merged)


def build_request(config: ReplyConfig, history: Sequence[Turn], now: datetime, asker_id: str) -> ModelRequest:
    """The system prompt is built per request; the date goes last because it changes daily."""
    system = (
        BASE_INSTRUCTIONS,
        SLACK_FORMATTING,
        f"Today is {now:%A, %d %B %Y}, {now:%H:%M} {now.tzname() or 'UTC'}.",
    )
    return ModelRequest(
        model=config.model,
        max_tokens=config.max_tokens,
        system=system,
        turns=merge_consecutive_turns(history),
        end_user_id=asker_id,
        fallback_models=config.fallback_models,
    )
