"""The assistant pane's rules: which persona greets and answers there, what it suggests, and a thread's title.

The pane is a side panel that follows the person around: it says which channel they are looking at (the
"context"), and the bot answers there with that channel's persona, as it would in the channel itself.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Protocol

from bot.core.channel_personas import ChannelPersonas
from bot.core.errors import StorageUnavailable
from bot.core.personas import Persona, SuggestedPrompt

log = logging.getLogger(__name__)

THREAD_TITLE_CHARS = 60  # ours: long enough to recognise a question in the pane's history, short enough to scan
UNTITLED = "Shared a file"


class PaneContextStore(Protocol):
    """The channel a person is viewing beside each pane thread; kept as long as the thread's history."""

    async def save_pane_context(
        self, workspace_id: str, pane_id: str, thread_id: str, channel_id: str | None
    ) -> None: ...

    async def pane_context(self, workspace_id: str, pane_id: str, thread_id: str) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Greeting:
    persona: Persona
    viewing: str | None  # the channel the person was looking at when they opened the pane
    prompts: tuple[SuggestedPrompt, ...]


class AssistantPane:
    def __init__(self, personas: ChannelPersonas, contexts: PaneContextStore) -> None:
        self._personas = personas
        self._contexts = contexts

    async def opened(self, workspace_id: str, pane_id: str, thread_id: str, viewing: str | None) -> Greeting:
        """A new pane thread: remember where the person is, and greet with that channel's persona's prompts."""
        await self.moved(workspace_id, pane_id, thread_id, viewing)
        persona = await self._persona_of(workspace_id, viewing)
        return Greeting(persona=persona, viewing=viewing, prompts=persona.prompts)

    async def moved(self, workspace_id: str, pane_id: str, thread_id: str, viewing: str | None) -> None:
        try:
            await self._contexts.save_pane_context(workspace_id, pane_id, thread_id, viewing)
        except StorageUnavailable:
            log.warning("could not remember a pane's context; it answers with the default persona")

    async def persona(self, workspace_id: str, pane_id: str, thread_id: str) -> Persona:
        """The persona a new pane thread starts with: the one of the channel the person was viewing."""
        try:
            viewing = await self._contexts.pane_context(workspace_id, pane_id, thread_id)
        except StorageUnavailable:
            viewing = None
        return await self._persona_of(workspace_id, viewing)

    async def _persona_of(self, workspace_id: str, channel_id: str | None) -> Persona:
        if channel_id is None:
            return self._personas.catalog.default
        try:
            return await self._personas.current(workspace_id, channel_id)
        except StorageUnavailable:
            return self._personas.catalog.default


def thread_title(question: str) -> str:
    """A pane thread's title from its first question: the opening words on one line, cut at a word."""
    text = " ".join(re.sub(r"<[^>]*>", " ", question).split())  # chat markup (mentions, links) reads badly in a title
    if not text:
        return UNTITLED
    if len(text) <= THREAD_TITLE_CHARS:
        return text
    cut = text[: THREAD_TITLE_CHARS - 1].rsplit(" ", 1)[0] or text[: THREAD_TITLE_CHARS - 1]
    return cut.rstrip(" ,.;:-") + "…"
