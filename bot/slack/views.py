"""Block Kit builders for what the bot shows outside streamed answers."""

from __future__ import annotations

from typing import Any

from bot.core import texts
from bot.core.i18n import tr
from bot.core.personas import Persona
from bot.core.tools.registry import Tool


def persona_list(personas: list[Persona], active: Persona) -> tuple[str, list[dict[str, Any]]]:
    """The /claude-persona listing: every persona with its description, the channel's active one marked."""
    lines = []
    for persona in personas:
        marker = tr(texts.PERSONA_LIST_ACTIVE) if persona.name == active.name else ""
        emoji = f"{persona.emoji} " if persona.emoji else ""
        lines.append(f"• {emoji}*{persona.name}* — {persona.description}{marker}")
    header = tr(texts.PERSONA_LIST_HEADER, persona=active.name)
    footer = tr(texts.PERSONA_LIST_FOOTER)
    text = "\n".join([header, *lines, footer])
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": header}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:3000]}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": footer}]},
    ]
    return text, blocks


def _command_description(tool: Tool) -> str:
    described = texts.COMMAND_DESCRIPTIONS.get(tool.command)
    return tr(described) if described else tool.description


APPROVE_ACTION = "tool_approve"
DENY_ACTION = "tool_deny"


def approval_prompt(approval_id: str, tool: str, summary: str, user_id: str) -> tuple[str, list[dict[str, Any]]]:
    """Approve / Deny for an action Claude wants to take; only the asker's click counts (checked on click)."""
    text = tr(texts.APPROVAL_PROMPT, user=user_id, tool=tool)
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
                    "text": {"type": "plain_text", "text": tr(texts.APPROVAL_APPROVE)},
                    "style": "primary",
                    "value": approval_id,
                },
                {
                    "type": "button",
                    "action_id": DENY_ACTION,
                    "text": {"type": "plain_text", "text": tr(texts.APPROVAL_DENY)},
                    "style": "danger",
                    "value": approval_id,
                },
            ],
        },
    ]
    return text, blocks


def approval_outcome(tool: str, approved: bool, reason: str = "") -> str:
    if approved:
        return tr(texts.APPROVAL_APPROVED, tool=tool)
    return tr(texts.APPROVAL_NOT_RUN, tool=tool, reason=reason or tr(texts.APPROVAL_DENIED))


def tool_list(tools: list[Tool]) -> tuple[str, list[dict[str, Any]]]:
    """/claude-tools: what Claude can use while answering, and the commands people can use directly."""
    for_claude = [t for t in tools if t.for_model]
    commands = [t for t in tools if t.for_people]
    lines = [tr(texts.TOOLS_COMMANDS_HEADING)]
    lines += [f"• `{t.command} {t.usage}`".rstrip() + f" — {_command_description(t)}" for t in commands]
    lines += [f"• `/claude-persona [name]` — {tr(texts.TOOLS_PERSONA_COMMAND)}", "", tr(texts.TOOLS_FOR_CLAUDE_HEADING)]
    for tool in for_claude:
        marks = tr(texts.TOOLS_ASKS_APPROVAL) if tool.acts else ""
        origin = tr(texts.TOOLS_MCP) if tool.source == "mcp" else ""
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
        buttons = [_button(STOP_ACTION, tr(texts.BUTTON_STOP), answer_id, tr(texts.BUTTON_STOP_LABEL))]
        return [{"type": "actions", "block_id": controls_block_id(answer_id, final=False), "elements": buttons}]
    buttons = [
        _button(GOOD_ANSWER_ACTION, ":+1:", answer_id, tr(texts.BUTTON_GOOD_LABEL)),
        _button(BAD_ANSWER_ACTION, ":-1:", answer_id, tr(texts.BUTTON_BAD_LABEL)),
        _button(REGENERATE_ACTION, tr(texts.BUTTON_REGENERATE), answer_id, tr(texts.BUTTON_REGENERATE_LABEL)),
    ]
    return [{"type": "actions", "block_id": controls_block_id(answer_id, final=True), "elements": buttons}]


def controls_block_id(answer_id: str, *, final: bool) -> str:
    """Names an answer's buttons, so its message can be found again from the thread (bot/slack/recovery.py)."""
    return f"answer-{'done' if final else 'running'}-{answer_id}"


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
        return tr(texts.PANE_GREETING)
    emoji = f"{persona.emoji} " if persona.emoji else ""
    return tr(
        texts.PANE_GREETING_PERSONA,
        channel=viewing,
        emoji=emoji,
        persona=persona.name,
        description=persona.description,
    )
