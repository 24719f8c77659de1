"""A Block Kit builder that keeps every view inside Slack's documented limits, whatever the data or the language.

Limits (https://docs.slack.dev/reference/block-kit/blocks, .../block-elements/button-element,
.../composition-objects/text-object): 100 blocks in a view (50 in a message), section text 3,000 characters,
header text 150, context elements 10, actions elements 25, button text 75, button value 2,000, modal title 24.
Texts are cut safely: never inside a Slack mention or link (`<@U…>`, `<#C…>`, `<https://…|…>`), never leaving a
code block open, and the cut is marked with "…".
"""

from __future__ import annotations

from typing import Any

VIEW_MAX_BLOCKS = 100
SECTION_TEXT_LIMIT = 3_000
HEADER_TEXT_LIMIT = 150
CONTEXT_TEXT_LIMIT = 2_000  # per element; Slack's text object allows 3,000, the context block is tighter in practice
CONTEXT_MAX_ELEMENTS = 10
ACTIONS_MAX_ELEMENTS = 25
BUTTON_TEXT_LIMIT = 75
BUTTON_VALUE_LIMIT = 2_000
MODAL_TITLE_LIMIT = 24
INPUT_LABEL_LIMIT = 2_000
PLACEHOLDER_LIMIT = 150
ELLIPSIS = "…"


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters at a safe place, marked with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: max(0, limit - len(ELLIPSIS) - 3)]  # room for the ellipsis and a closing code fence
    opening = cut.rfind("<")
    if opening > cut.rfind(">"):
        cut = cut[:opening]  # a mention or link would break half-written: drop it whole
    space = max(cut.rfind(" "), cut.rfind("\n"))
    if space >= max(len(cut) - 40, len(cut) // 2):
        cut = cut[:space]  # end on a word boundary when one is near
    cut = cut.rstrip() + ELLIPSIS
    if cut.count("```") % 2:
        cut += "```"
    return cut


def plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": clip(text, limit) or " ", "emoji": True}


def mrkdwn(text: str, limit: int = SECTION_TEXT_LIMIT) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": clip(text, limit) or " "}


def button(action_id: str, text: str, *, value: str = "", style: str | None = None) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "button", "action_id": action_id, "text": plain(text, BUTTON_TEXT_LIMIT)}
    if value:
        element["value"] = value[:BUTTON_VALUE_LIMIT]
    if style:
        element["style"] = style
    return element


class Blocks:
    """Collects blocks up to `max_blocks`; `room()` says how many are left so callers can summarise the rest."""

    def __init__(self, max_blocks: int = VIEW_MAX_BLOCKS) -> None:
        self.max_blocks = max_blocks
        self.blocks: list[dict[str, Any]] = []

    def room(self) -> int:
        return self.max_blocks - len(self.blocks)

    def add(self, block: dict[str, Any]) -> bool:
        """False (and nothing added) once the view is full."""
        if self.room() <= 0:
            return False
        self.blocks.append(block)
        return True

    def header(self, text: str) -> bool:
        return self.add({"type": "header", "text": plain(text, HEADER_TEXT_LIMIT)})

    def section(self, text: str) -> bool:
        return self.add({"type": "section", "text": mrkdwn(text)})

    def context(self, *texts: str) -> bool:
        elements = [mrkdwn(text, CONTEXT_TEXT_LIMIT) for text in texts[:CONTEXT_MAX_ELEMENTS]]
        return self.add({"type": "context", "elements": elements})

    def divider(self) -> bool:
        return self.add({"type": "divider"})

    def actions(self, *buttons: dict[str, Any], block_id: str = "") -> bool:
        block: dict[str, Any] = {"type": "actions", "elements": list(buttons[:ACTIONS_MAX_ELEMENTS])}
        if block_id:
            block["block_id"] = block_id
        return self.add(block)

    def sections_of_lines(self, lines: list[str], *, keep_free: int = 0) -> int:
        """As many sections (each up to 3,000 characters) as the lines need and the view has room for, leaving
        `keep_free` blocks; returns how many lines were shown."""
        shown, pending, chunk = 0, 0, ""
        for line in lines:
            line = clip(line, SECTION_TEXT_LIMIT)
            if chunk and len(chunk) + 1 + len(line) > SECTION_TEXT_LIMIT:
                if self.room() <= keep_free or not self.section(chunk):
                    return shown
                shown, pending, chunk = shown + pending, 0, ""
            chunk = f"{chunk}\n{line}" if chunk else line
            pending += 1
        if chunk and self.room() > keep_free and self.section(chunk):
            shown += pending
        return shown
