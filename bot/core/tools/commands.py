"""Tools people call as slash commands that become streamed answers: /claude-review, /claude-summarize."""

from __future__ import annotations

import re

from bot.core.tools.registry import CommandPrompt, Tool, ToolContext, ToolError

_MESSAGE_LINK = re.compile(r"https://[\w.-]+/archives/([CGD][A-Z0-9]+)/p(\d{10})(\d{6})(?:\?thread_ts=([\d.]+))?")


def review_prompt(text: str) -> CommandPrompt:
    """Code pasted inline is reviewed as is; a link to a Slack message is read first (permission-checked)."""
    link = _MESSAGE_LINK.search(text)
    if link is not None:
        channel, seconds, micros, thread = link.groups()
        ts = f"{seconds}.{micros}"
        note = text.replace(link.group(0), "").strip()
        return CommandPrompt(
            persona="code_reviewer",
            text=(
                f"Review the code in the Slack message <#{channel}> ts {ts}: read it with read_thread "
                f"(channel {channel}, thread_ts {thread or ts}) and review the message with that ts."
                + (f"\n\nContext from the requester: {note}" if note else "")
            ),
        )
    return CommandPrompt(persona="code_reviewer", text=f"Please review this:\n\n```\n{text.strip()}\n```")


def summarize_prompt(text: str) -> CommandPrompt:
    focus = f" Focus on: {text.strip()}." if text.strip() else ""
    return CommandPrompt(
        persona=None,
        text=(
            "Summarise the recent conversation in this channel: read it with read_channel, then give the main "
            f"topics, decisions, open questions and who owns what next.{focus}"
        ),
    )


async def _not_for_claude(_: object, __: ToolContext) -> str:
    raise ToolError("this is a command for people")


REVIEW = Tool(
    name="review",
    description=(
        "Review code, a diff or a Slack message with the code_reviewer persona: Summary, Issues, Suggestions, Rating."
    ),
    input_model=None,
    run=_not_for_claude,
    for_model=False,
    for_people=True,
    usage="<code or diff, or a link to a Slack message>",
    as_prompt=review_prompt,
)

SUMMARIZE = Tool(
    name="summarize",
    description="Summarise the recent conversation in this channel: topics, decisions, open questions, owners.",
    input_model=None,
    run=_not_for_claude,
    for_model=False,
    for_people=True,
    usage="[what to focus on]",
    as_prompt=summarize_prompt,
)
