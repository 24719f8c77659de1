"""A tool is declared once: name, description, input model (Claude's JSON schema comes from it), and how it runs.

Claude sees tools with `for_model`; people get `/claude-<name>` for tools with `for_people`. A tool that `acts` on
the world (posts, writes, calls out with side effects) never runs for Claude without the asking person's approval.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ValidationError

from bot.core.context_window import HistoryHit
from bot.core.conversation import ChannelContext


class ToolError(Exception):
    """A tool failed in a way Claude should hear about (an `is_error` tool_result with this plain reason)."""


@dataclass(frozen=True, slots=True)
class ReadMessage:
    """A Slack message as a read tool returns it to Claude (already permission-checked)."""

    author: str
    text: str
    ts: str
    thread_replies: int = 0


class ConversationReader(Protocol):
    """Reads what the *asking user* may see; the chat adapter checks membership before reading anything."""

    async def read_thread(
        self, workspace_id: str, channel_id: str, thread_ts: str, *, as_user: str, limit: int, shown_in: str
    ) -> list[ReadMessage]: ...

    async def read_channel(
        self, workspace_id: str, channel_id: str, *, as_user: str, limit: int, shown_in: str
    ) -> list[ReadMessage]:
        """`shown_in` is where the answer will appear: private content may only go back there or to a DM."""
        ...

    async def can_read(self, workspace_id: str, channel_id: str, *, as_user: str, shown_in: str) -> bool:
        """Whether read_channel/read_thread would show this conversation to as_user in shown_in."""
        ...

    async def post_message(self, workspace_id: str, channel_id: str, text: str, *, as_user: str) -> str:
        """Post as the bot into a channel the user belongs to; returns a permalink or ts."""
        ...


class FoldedHistory(Protocol):
    def search(self, query: str, *, limit: int) -> list[HistoryHit]: ...


class WebFetcher(Protocol):
    async def fetch_text(self, url: str, *, max_chars: int) -> tuple[str, str]:
        """(title, readable text) of a public web page; raises ToolError for refused or failed fetches."""
        ...


@dataclass(frozen=True, slots=True)
class ToolContext:
    """Everything a tool may use while running: where it was asked, by whom, and the services it may call."""

    workspace_id: str
    channel_id: str
    thread_id: str
    user_id: str
    channel: ChannelContext | None = None
    reader: ConversationReader | None = None
    web: WebFetcher | None = None
    history: FoldedHistory | None = None  # the part of a long thread folded into its summary
    # URLs people wrote in this conversation (not Claude, not tools): fetch_url reads these without asking.
    human_urls: frozenset[str] = frozenset()


ToolRun = Callable[[Any, ToolContext], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class CommandPrompt:
    """A slash command that becomes a streamed answer: which persona, and what to ask it."""

    persona: str | None
    text: str
    in_channel: bool = True


@dataclass(frozen=True)
class Tool:
    """One capability. `run` returns text for Claude (or for an ephemeral slash-command reply)."""

    name: str
    description: str
    input_model: type[BaseModel] | None
    run: ToolRun
    for_model: bool = True
    for_people: bool = False
    acts: bool = False
    usage: str = ""  # slash-command usage hint, e.g. "<code, or a link to a message>"
    timeout_s: float = 30.0
    # What the Slack message says while the tool runs, e.g. "Reading #general…"
    describe: Callable[[Any], str] | None = None
    # Slash command as a streamed answer (e.g. /claude-review): builds the prompt from the command text.
    as_prompt: Callable[[str], CommandPrompt] | None = None
    # For tools whose schema is not a pydantic model (MCP servers): the JSON schema as given.
    raw_schema: dict[str, Any] | None = None
    # False while the tool cannot run (its MCP server is away): it is then not offered to Claude.
    available: Callable[[], bool] = field(default=lambda: True)
    source: Literal["builtin", "mcp"] = "builtin"
    extra: dict[str, Any] = field(default_factory=dict)
    # A tool that only reads may still need the asker's approval for some calls (fetch_url on a URL Claude
    # composed, which could carry the thread's content out in its query): True for those calls.
    asks_first: Callable[[Any, ToolContext], bool] | None = None

    def needs_approval(self, parsed: Any, context: ToolContext) -> bool:
        return self.acts or (self.asks_first is not None and self.asks_first(parsed, context))

    @property
    def command(self) -> str:
        return f"/claude-{self.name.replace('_', '-')}"

    def input_schema(self) -> dict[str, Any]:
        if self.raw_schema is not None:
            return self.raw_schema
        if self.input_model is None:
            return {"type": "object", "properties": {}}
        return _json_schema(self.input_model)

    def parse_input(self, raw: dict[str, Any]) -> Any:
        """Validate Claude's input against the model; a mismatch is a ToolError Claude can correct."""
        if self.input_model is None:
            return raw
        try:
            return self.input_model.model_validate(raw)
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in error.errors())
            raise ToolError(f"invalid input: {problems}") from None

    def status(self, parsed: Any) -> str:
        if self.describe is not None:
            try:
                return self.describe(parsed)
            except Exception:  # a status line must never break a tool call
                pass
        return f"Using {self.name}…"


@functools.cache
def _json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A tool's input schema, built once: pydantic builds it from scratch on every call, and every model request
    lists every tool (measured: 3% of the bot's CPU under load). Shared, like a raw schema: read it, never change it.
    """
    schema = model.model_json_schema()
    schema.pop("title", None)
    return schema


class ToolRegistry:
    """All tools by name; later registrations with the same name are refused (names are Claude's API)."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.register(tool)

    def register(self, tool: Tool) -> None:
        if tool.name in self._tools:
            raise ValueError(f"tool {tool.name!r} is registered twice")
        self._tools[tool.name] = tool

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def __iter__(self) -> Iterator[Tool]:
        return iter(sorted(self._tools.values(), key=lambda t: t.name))

    def for_model(self, allowed: Callable[[str], bool] = lambda _: True) -> list[Tool]:
        return [tool for tool in self if tool.for_model and tool.available() and allowed(tool.name)]

    def commands(self) -> list[Tool]:
        return [tool for tool in self if tool.for_people]

    def by_command(self, command: str) -> Tool | None:
        return next((tool for tool in self.commands() if tool.command == command), None)
