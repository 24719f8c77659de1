"""Block Kit builders for what the bot shows outside streamed answers."""

from __future__ import annotations

from typing import Any

from bot.core.personas import Persona
from bot.core.tools.registry import Tool


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


APPROVE_ACTION = "tool_approve"
DENY_ACTION = "tool_deny"


def approval_prompt(approval_id: str, tool: str, summary: str, user_id: str) -> tuple[str, list[dict[str, Any]]]:
    """Approve / Deny for an action Claude wants to take; only the asker's click counts (checked on click)."""
    text = f"<@{user_id}>, Claude wants to use *{tool}*. Approve?"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"```{summary[:2800]}```"}},
        {
            "type": "actions",
            "block_id": f"approval-{approval_id}",
            "elements": [
                {
                    "type": "button",
                    "action_id": APPROVE_ACTION,
                    "text": {"type": "plain_text", "text": "Approve"},
                    "style": "primary",
                    "value": approval_id,
                },
                {
                    "type": "button",
                    "action_id": DENY_ACTION,
                    "text": {"type": "plain_text", "text": "Deny"},
                    "style": "danger",
                    "value": approval_id,
                },
            ],
        },
    ]
    return text, blocks


def approval_outcome(tool: str, approved: bool, reason: str = "") -> str:
    if approved:
        return f":white_check_mark: *{tool}* was approved."
    return f":no_entry_sign: *{tool}* was not run: {reason or 'denied'}."


def tool_list(tools: list[Tool]) -> tuple[str, list[dict[str, Any]]]:
    """/claude-tools: what Claude can use while answering, and the commands people can use directly."""
    for_claude = [t for t in tools if t.for_model]
    commands = [t for t in tools if t.for_people]
    lines = ["*Commands*"]
    lines += [f"• `{t.command} {t.usage}`".rstrip() + f" — {t.description}" for t in commands]
    lines += ["• `/claude-persona [name]` — show or set this channel's persona", "", "*Tools Claude can use*"]
    for tool in for_claude:
        marks = " _(asks for your approval first)_" if tool.acts else ""
        origin = " _(MCP)_" if tool.source == "mcp" else ""
        lines.append(f"• *{tool.name}*{origin} — {tool.description}{marks}")
    text = "\n".join(lines)
    return text, [{"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}]


STOP_ACTION = "answer_stop"
GOOD_ANSWER_ACTION = "answer_good"
BAD_ANSWER_ACTION = "answer_bad"
REGENERATE_ACTION = "answer_regenerate"


def answer_controls(answer_id: str, final: bool) -> list[dict[str, Any]]:
    """Small buttons under an answer: Stop while it is being written; 👍 / 👎 and Regenerate once it is done."""
    if not final:
        buttons = [_button(STOP_ACTION, ":black_square_for_stop: Stop", answer_id, "Stop writing this answer")]
        return [{"type": "actions", "block_id": f"answer-running-{answer_id}", "elements": buttons}]
    buttons = [
        _button(GOOD_ANSWER_ACTION, ":+1:", answer_id, "Good answer"),
        _button(BAD_ANSWER_ACTION, ":-1:", answer_id, "Bad answer"),
        _button(REGENERATE_ACTION, ":arrows_counterclockwise: Regenerate", answer_id, "Answer this question again"),
    ]
    return [{"type": "actions", "block_id": f"answer-done-{answer_id}", "elements": buttons}]


def _button(action_id: str, text: str, value: str, label: str) -> dict[str, Any]:
    """`accessibility_label` is what screen readers say instead of an emoji-only text (Slack allows 75 chars)."""
    return {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": text, "emoji": True},
        "value": value,
        "accessibility_label": label,
    }


def pane_greeting(persona: Persona, viewing: str | None, is_default: bool) -> str:
    """The first message in a new assistant-pane thread: who answers, and that suggestions follow."""
    if is_default or viewing is None:
        return "Hi! Ask me anything here, or start with one of the suggestions."
    emoji = f"{persona.emoji} " if persona.emoji else ""
    return (
        f"Hi! You're in <#{viewing}>, so I'll answer as {emoji}*{persona.name}*: {persona.description} "
        "Ask me anything here, or start with one of the suggestions."
    )
