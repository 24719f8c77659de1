"""Block Kit builders for what the bot shows outside streamed answers."""

from __future__ import annotations

from typing import Any

from bot.core.personas import Persona


def persona_list(personas: list[Persona], active: Persona) -> tuple[str, list[dict[str, Any]]]:
    """The /claude-persona listing: every persona with its description, the channel's active one marked."""
    lines = []
    for persona in personas:
        marker = " ← active here" if persona.name == active.name else ""
        emoji = f"{persona.emoji} " if persona.emoji else ""
        lines.append(f"• {emoji}*{persona.name}* — {persona.description}{marker}")
    header = f"This channel uses *{active.name}*. Available personas:"
    footer = "Change it with `/claude-persona NAME`. Threads already running keep the persona they started with."
    text = "\n".join([header, *lines, footer])
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": header}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:3000]}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": footer}]},
    ]
    return text, blocks
