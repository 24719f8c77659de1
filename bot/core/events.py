"""What a reply stream carries from the core to whoever shows it (Slack, the terminal)."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.core.conversation import Block


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens billed for one model call; cache counts are kept apart because they are priced apart."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    web_search_requests: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.web_search_requests + other.web_search_requests,
        )


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ThinkingStarted:
    pass


@dataclass(frozen=True, slots=True)
class ToolRunning:
    """A tool is working (shown as e.g. "Reading #general…" until the answer continues)."""

    tool: str
    status: str


@dataclass(frozen=True, slots=True)
class ApprovalRequested:
    """A tool that acts on the world waits for the asking person's Approve / Deny."""

    approval_id: str
    tool: str
    summary: str
    user_id: str


@dataclass(frozen=True, slots=True)
class ApprovalSettled:
    approval_id: str
    approved: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class AttemptRestarted:
    """The model call failed part-way and is being retried: text shown so far is about to be replaced."""

    reason: str


@dataclass(frozen=True, slots=True)
class Waiting:
    """The reply is held up (e.g. storage unreachable); shown so the user knows the bot has not died."""

    reason: str


@dataclass(frozen=True, slots=True)
class Notice:
    """Something the user should know about this answer, shown beside it (a file skipped, older images left out)."""

    text: str


@dataclass(frozen=True, slots=True)
class ModelTurnComplete:
    """End of one model call: the full content (to store) and what it cost."""

    blocks: tuple[Block, ...]
    usage: Usage
    stop_reason: str
    model: str
    provider: str = "anthropic"  # where it was served (CLAUDE_PROVIDERS): recorded and priced per provider


@dataclass(frozen=True, slots=True)
class UsageSoFar:
    """What a model call has used up to now (output tokens estimated until the call ends): billed if it is stopped."""

    usage: Usage
    model: str
    provider: str = "anthropic"


@dataclass(frozen=True, slots=True)
class AttemptFailed(UsageSoFar):
    """An attempt of a model call that reached the API and failed (an error event, a cut stream): what the API
    reported it used, billed like any call. Seen as a UsageSoFar by code that only follows progress."""


@dataclass(frozen=True, slots=True)
class ReplyDone:
    text: str
    usage: Usage = field(default_factory=Usage)
    stop_reason: str = "end_turn"


ModelEvent = TextDelta | ThinkingStarted | ToolRunning | AttemptRestarted | ModelTurnComplete | UsageSoFar
ReplyEvent = (
    TextDelta
    | ThinkingStarted
    | ToolRunning
    | ApprovalRequested
    | ApprovalSettled
    | AttemptRestarted
    | Waiting
    | Notice
    | ReplyDone
)
