"""Builds the model request: stable instructions first, per-request facts last (so a cached prefix survives)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.core.conversation import Asker, ChannelContext, IncomingMessage, ToolCallBlock, ToolResultBlock, Turn
from bot.core.personas import Persona
from bot.core.ports import ModelRequest, ToolSpec
from bot.core.tools.runner import DATA_NOT_INSTRUCTIONS


@dataclass(frozen=True, slots=True)
class ReplyConfig:
    """Bot-wide defaults; a persona may override model and max_tokens."""

    model: str
    max_tokens: int
    fallback_models: tuple[str, ...] = ()
    # How to format for the surface the answer is shown on (Slack mrkdwn, a terminal); given by the adapter.
    format_instructions: str = ""
    web_search: bool = False  # offer the provider's server-side web search tool


INTERRUPTED_TOOL = "This tool call was interrupted before it finished; it has no result."


def close_open_tool_calls(turns: Sequence[Turn]) -> list[Turn]:
    """Every tool call is answered in the very next turn, results first, and no result answers a missing call.

    The API rejects a thread that breaks this on every later request; a crash or an outage between storing a
    tool call and its result must not leave a conversation unusable, so requests are repaired on the way out.
    """
    repaired: list[Turn] = []
    open_calls: list[str] = []
    for turn in turns:
        if turn.role == "user":
            results = [b for b in turn.blocks if isinstance(b, ToolResultBlock) and b.tool_call_id in open_calls]
            answered = {b.tool_call_id for b in results}
            stubs = [_stub(call) for call in open_calls if call not in answered]
            others = [b for b in turn.blocks if not isinstance(b, ToolResultBlock)]
            if open_calls or len(others) != len(turn.blocks):
                turn = Turn(role="user", blocks=(*results, *stubs, *others), author_id=turn.author_id)
            open_calls = []
            if not turn.blocks:
                continue
        else:
            if open_calls:
                repaired.append(Turn(role="user", blocks=tuple(_stub(call) for call in open_calls)))
            open_calls = [b.id for b in turn.blocks if isinstance(b, ToolCallBlock)]
        repaired.append(turn)
    if open_calls:
        repaired.append(Turn(role="user", blocks=tuple(_stub(call) for call in open_calls)))
    return repaired


def _stub(call_id: str) -> ToolResultBlock:
    return ToolResultBlock(tool_call_id=call_id, text=INTERRUPTED_TOOL, is_error=True)


def merge_consecutive_turns(turns: Sequence[Turn]) -> tuple[Turn, ...]:
    """A failed answer leaves two user turns in a row; join them so the request alternates roles."""
    merged: list[Turn] = []
    for turn in close_open_tool_calls(turns):
        if merged and merged[-1].role == turn.role:
            previous = merged[-1]
            merged[-1] = Turn(role=turn.role, blocks=previous.blocks + turn.blocks, author_id=turn.author_id)
        else:
            merged.append(turn)
    while merged and merged[0].role != "user":
        merged.pop(0)
    return tuple(merged)


def local_time(now: datetime, timezone: str) -> datetime:
    try:
        return now.astimezone(ZoneInfo(timezone))
    except (ZoneInfoNotFoundError, ValueError):
        return now.astimezone(ZoneInfo("UTC"))


def describe_context(asker: Asker | None, channel: ChannelContext | None, now: datetime) -> str:
    """The per-request part of the system prompt: who asks, where, and when (in the asker's time zone)."""
    lines = ["## This conversation"]
    if asker is not None:
        who = asker.display_name or "a colleague"
        if asker.title:
            who += f", {asker.title}"
        lines.append(f"- You are talking with {who} (Slack user <@{asker.user_id}>).")
    if channel is not None:
        where = f"#{channel.name}" if channel.name and channel.kind.endswith("channel") else channel.kind
        lines.append(f"- Place: {where} ({channel.kind}).")
        if channel.topic:
            lines.append(f"- Channel topic: {channel.topic}")
        if channel.purpose:
            lines.append(f"- Channel purpose: {channel.purpose}")
    timezone = asker.timezone if asker is not None else "UTC"
    local = local_time(now, timezone)
    lines.append(f"- Their local date and time: {local:%A, %d %B %Y, %H:%M} ({timezone}).")
    return "\n".join(lines)


def build_request(
    persona: Persona,
    config: ReplyConfig,
    history: Sequence[Turn],
    message: IncomingMessage,
    now: datetime,
    *,
    tools: tuple[ToolSpec, ...] = (),
) -> ModelRequest:
    """Persona and formatting rules first (the same for every request: cacheable); context last."""
    tool_rules = DATA_NOT_INSTRUCTIONS if tools or config.web_search else ""
    stable = tuple(part for part in (persona.prompt, config.format_instructions, tool_rules) if part)
    max_tokens = persona.max_tokens or config.max_tokens
    thinking = persona.thinking if persona.thinking != "off" else None
    if isinstance(thinking, int) and thinking >= max_tokens:
        # Manual thinking must leave room for the answer itself (budget_tokens < max_tokens).
        max_tokens = thinking + config.max_tokens
    return ModelRequest(
        model=persona.model or config.model,
        max_tokens=max_tokens,
        system=(*stable, describe_context(message.asker, message.channel, now)),
        stable_system_parts=len(stable),
        turns=merge_consecutive_turns(history),
        end_user_id=message.user_id,
        fallback_models=config.fallback_models,
        effort=persona.effort,
        thinking=thinking,
        tools=tools,
        web_search=config.web_search and (persona.tools is None or persona.allows_tool("web_search")),
    )
