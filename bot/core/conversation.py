"""Value types for a conversation: who said what, in the core's own words (no Slack, no SDK types)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


@dataclass(frozen=True, slots=True)
class ConversationKey:
    """One conversation: a thread in a channel of a workspace (or a rolling DM session)."""

    workspace_id: str
    channel_id: str
    thread_id: str


@dataclass(frozen=True, slots=True)
class Asker:
    """Who is asking, as the prompt describes them; `timezone` is an IANA name such as Europe/London."""

    user_id: str
    display_name: str = ""
    title: str = ""
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class ChannelContext:
    """Where the conversation happens: enough for Claude to pitch its answer (a #data channel, a DM...)."""

    name: str = ""
    kind: str = "channel"  # channel | private channel | direct message | group direct message | terminal
    topic: str = ""
    purpose: str = ""


@dataclass(frozen=True, slots=True)
class IncomingFile:
    """A file attached to a message, as the chat surface describes it; `url` is untrusted until fetched safely."""

    id: str
    name: str
    mimetype: str = ""
    size: int | None = None
    url: str = ""


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """A message someone asked the bot to answer, already stripped of the bot's own mention."""

    key: ConversationKey
    message_id: str
    user_id: str
    text: str
    asker: Asker | None = None
    channel: ChannelContext | None = None
    files: tuple[IncomingFile, ...] = ()
    persona: str | None = None  # start a new conversation with this persona instead of the channel's (commands)
    answer_id: str | None = None  # names the answer for Stop, Regenerate and feedback (None: no such controls)
    regenerates: str | None = None  # answer id whose question is answered again, replacing that answer


class _Block(BaseModel):
    model_config = ConfigDict(frozen=True)


class TextBlock(_Block):
    type: Literal["text"] = "text"
    text: str


class ThinkingBlock(_Block):
    """Kept verbatim with its signature: the API rejects altered thinking when it is passed back."""

    type: Literal["thinking"] = "thinking"
    thinking: str
    signature: str


class RedactedThinkingBlock(_Block):
    type: Literal["redacted_thinking"] = "redacted_thinking"
    data: str


class ToolCallBlock(_Block):
    type: Literal["tool_call"] = "tool_call"
    id: str
    name: str
    input: dict[str, object]


class ToolResultBlock(_Block):
    type: Literal["tool_result"] = "tool_result"
    tool_call_id: str
    text: str
    is_error: bool = False


class ServerToolBlock(_Block):
    """A block run on Claude's side (web search call or result): kept verbatim and passed back as it came."""

    type: Literal["server_tool"] = "server_tool"
    data: dict[str, object]


class MediaBlock(_Block):
    """An image or PDF in the conversation: a reference to processed bytes kept once in the media store."""

    type: Literal["media"] = "media"
    ref: str
    kind: Literal["image", "pdf"]
    media_type: str
    name: str = ""


Block = Annotated[
    TextBlock | ThinkingBlock | RedactedThinkingBlock | ToolCallBlock | ToolResultBlock | MediaBlock | ServerToolBlock,
    Field(discriminator="type"),
]


class Turn(BaseModel):
    """One message of the conversation as the model sees it."""

    model_config = ConfigDict(frozen=True)

    role: Literal["user", "assistant"]
    blocks: tuple[Block, ...]
    author_id: str | None = None
    # Who wrote a person's message and when, e.g. "Ada (Staff Engineer), Thu 26 Nov 2026 08:30 Asia/Tokyo".
    # Stored with the turn (not rebuilt per request) so earlier turns stay byte-identical and cacheable.
    header: str | None = None

    @classmethod
    def user(cls, text: str, author_id: str | None = None) -> Turn:
        return cls(role="user", blocks=(TextBlock(text=text),), author_id=author_id)

    @property
    def text(self) -> str:
        return "".join(block.text for block in self.blocks if isinstance(block, TextBlock))


TURN_JSON = TypeAdapter(Turn)


@dataclass(frozen=True, slots=True)
class Fold:
    """Turns 1..upto-1 are summarised in `summary` for the model; the store still holds them verbatim."""

    summary: str
    upto: int


@dataclass(frozen=True, slots=True)
class MeasuredSize:
    """The real input size of a thread's last call: its first `turns` stored turns, with `folded_upto` applied."""

    tokens: int
    turns: int
    folded_upto: int = 0


@dataclass(frozen=True, slots=True)
class StoredConversation:
    """What the store keeps for a thread: its turns and the persona it started with (None for a new thread)."""

    turns: list[Turn]
    persona: str | None = None
    fold: Fold | None = None
    measured: MeasuredSize | None = None
    open: OpenExchange | None = None  # an answer not yet (or never) completed in history; see `OpenExchange`


@dataclass(frozen=True, slots=True)
class OpenExchange:
    """A question whose answer is still being written (or was cut short): set with the question's turn, cleared with
    the answer's last save. `token` is the lease of the process answering it; `question_index` the question's turn."""

    token: int
    question_index: int
