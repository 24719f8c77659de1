"""Persona model and catalog: who the bot is in a conversation, as written by people in personas/*.md."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Annotated, Literal, NamedTuple, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Effort = Literal["low", "medium", "high", "xhigh", "max"]

# The API's floor for manual extended thinking (`budget_tokens` >= 1024, and below max_tokens).
MIN_THINKING_BUDGET = 1024
MAX_TOKENS_LIMIT = 128_000

ToolName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]

# Slack's assistant pane shows at most 4 suggested prompts (the manifest schema's agent_view.suggested_prompts has
# maxItems 4). The text limits are ours, to keep a prompt a one-glance button (Slack documents none).
MAX_SUGGESTED_PROMPTS = 4
PROMPT_TITLE_LIMIT = 75
PROMPT_MESSAGE_LIMIT = 1000


class SuggestedPrompt(BaseModel):
    """A starter question offered in the assistant pane: the button's title and the message it sends."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    title: str = Field(min_length=1, max_length=PROMPT_TITLE_LIMIT)
    message: str = Field(min_length=1, max_length=PROMPT_MESSAGE_LIMIT)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: object) -> object:
        """A plain line is both the title and the message, which is what most prompts want."""
        if isinstance(value, str):
            text = " ".join(value.split())
            return {"title": text[:PROMPT_TITLE_LIMIT], "message": text}
        return value


DEFAULT_SUGGESTED_PROMPTS = (
    SuggestedPrompt(title="What can you do?", message="What can you help me with here, and how should I ask?"),
    SuggestedPrompt(title="Draft a message", message="Help me draft a message. Ask me what it is about first."),
    SuggestedPrompt(title="Summarise a document", message="Summarise a document for me. Ask me to share it first."),
)
"""Offered by personas that list none of their own. Clicking a prompt sends its message, so each one stands alone."""

FRONT_MATTER_KEYS = frozenset(
    {"name", "description", "emoji", "model", "max_tokens", "effort", "thinking", "tools", "suggested_prompts"}
)
"""Keys a persona file may set; `prompt` is the file's body and `source` its path, never front matter."""

FIELD_RULES: dict[str, str] = {
    "name": "name must be 1 to 40 lowercase letters, digits, '_' or '-'",
    "description": "description must be one line of 1 to 150 characters",
    "prompt": "the prompt is empty: write the instructions below the closing '---'",
    "emoji": 'emoji must be a Slack emoji code in quotes, like ":mag:"',
    "model": "model must be a model id without spaces, like claude-sonnet-5-5",
    "max_tokens": f"max_tokens must be a whole number from 1 to {MAX_TOKENS_LIMIT}",
    "effort": "effort must be one of: low, medium, high, xhigh, max",
    "thinking": f"thinking must be 'off', 'adaptive' or a number >= {MIN_THINKING_BUDGET}",
    "tools": "tools must be a list of tool names, like [read_thread, fetch_url]",
    "suggested_prompts": (
        f"suggested_prompts must be a list of at most {MAX_SUGGESTED_PROMPTS} prompts, each a line of text or "
        f"'title:' (up to {PROMPT_TITLE_LIMIT} characters) and 'message:' (up to {PROMPT_MESSAGE_LIMIT})"
    ),
    "source": "source must be text",
}
"""Each field's rule in plain words, kept beside the model so a changed rule changes its message too."""

_EMOJI_CODE = re.compile(r":?([a-z0-9_+'-]+):?")


class Persona(BaseModel):
    """One persona: the system prompt plus the model settings it asks for (unset = the bot's defaults)."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    name: str = Field(pattern=r"^[a-z0-9_-]{1,40}$")
    description: str = Field(min_length=1, max_length=150)
    prompt: str = Field(min_length=1)
    emoji: str | None = Field(default=None, pattern=r"^:[a-z0-9_+'-]+:$")
    model: str | None = Field(default=None, pattern=r"^\S{1,200}$")
    max_tokens: Annotated[int, Field(ge=1, le=MAX_TOKENS_LIMIT, strict=True)] | None = None
    effort: Effort | None = None
    thinking: Literal["off", "adaptive"] | Annotated[int, Field(ge=MIN_THINKING_BUDGET, strict=True)] | None = None
    tools: tuple[ToolName, ...] | None = None
    suggested_prompts: Annotated[tuple[SuggestedPrompt, ...], Field(max_length=MAX_SUGGESTED_PROMPTS)] | None = None
    source: str = ""

    @field_validator("description", mode="before")
    @classmethod
    def _one_line(cls, value: object) -> object:
        """A folded YAML block (`>`) or a stray line break should still read as one line in a list."""
        return " ".join(value.split()) if isinstance(value, str) else value

    @field_validator("emoji", mode="before")
    @classmethod
    def _emoji_code(cls, value: object) -> object:
        """Accept `mag` or `:mag:` alike: Slack wants the colons, people often forget them."""
        if isinstance(value, str) and (match := _EMOJI_CODE.fullmatch(value.strip().lower())):
            return f":{match.group(1)}:"
        return value

    @field_validator("effort", mode="before")
    @classmethod
    def _lower_effort(cls, value: object) -> object:
        """`High` and `high` mean the same to a person editing the file."""
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("thinking", mode="before")
    @classmethod
    def _thinking_words(cls, value: object) -> object:
        """YAML 1.1 reads `off` as False, and a quoted "2048" is still a number to the reader."""
        if value is False:
            return "off"
        if isinstance(value, str):
            word = value.strip().lower()
            return int(word) if word.isdigit() else word
        return value

    @field_validator("tools", mode="before")
    @classmethod
    def _tool_list(cls, value: object) -> object:
        """`tools: read_thread, fetch_url` (no brackets) is a natural thing to write; treat it as a list."""
        if isinstance(value, str):
            return tuple(part for part in re.split(r"[,\s]+", value) if part)
        return value

    @field_validator("tools")
    @classmethod
    def _unique_tools(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        """A tool listed twice is harmless; keep the first mention and the author's order."""
        return None if value is None else tuple(dict.fromkeys(value))

    @model_validator(mode="after")
    def _budget_fits(self) -> Self:
        """The API rejects a thinking budget that leaves no room for the answer itself."""
        if isinstance(self.thinking, int) and self.max_tokens is not None and self.thinking >= self.max_tokens:
            raise ValueError(
                f"thinking budget ({self.thinking} tokens) must be less than max_tokens ({self.max_tokens})"
            )
        return self

    @property
    def prompts(self) -> tuple[SuggestedPrompt, ...]:
        """What the assistant pane suggests when this persona answers there."""
        return self.suggested_prompts or DEFAULT_SUGGESTED_PROMPTS

    def allows_tool(self, tool_name: str) -> bool:
        """Tools are opt-out per persona: no list means every registered tool is available."""
        return self.tools is None or tool_name in self.tools


class PersonaProblem(NamedTuple):
    """A persona file (or folder) that could not be used, with one readable line saying why."""

    file: str
    problem: str


def persona_key(name: str) -> str:
    """People type `Code-Reviewer` for `code_reviewer`; both should find it."""
    return name.strip().lower().replace("-", "_")


class PersonaCatalog:
    """The personas the bot can speak as, looked up forgivingly, with a default that always exists."""

    def __init__(self, personas: Iterable[Persona], *, default_name: str = "default") -> None:
        """A later persona with the same name replaces an earlier one, as a later folder overrides built-ins."""
        by_key: dict[str, Persona] = {}
        for persona in personas:
            by_key[persona_key(persona.name)] = persona
        if not by_key:
            raise ValueError("no personas to choose from: every persona file is missing or has a problem")
        self._by_key = dict(sorted(by_key.items(), key=lambda item: item[1].name))
        chosen = self.get(default_name) or self.get("default") or next(iter(self._by_key.values()))
        self.default_name: str = chosen.name
        # The requested default when it was not found (worth a warning at start-up), else None.
        self.fallback_from: str | None = None if self.get(default_name) else default_name

    def get(self, name: str) -> Persona | None:
        """Case-insensitive, and `-` matches `_`, so slash-command arguments need not be exact."""
        return self._by_key.get(persona_key(name))

    def resolve(self, name: str | None) -> Persona:
        """Never fails: a conversation with an unknown or retired persona carries on with the default."""
        return (self.get(name) if name else None) or self.default

    def names(self) -> list[str]:
        """Sorted, for lists shown to people and for stable test output."""
        return [persona.name for persona in self._by_key.values()]

    @property
    def default(self) -> Persona:
        """The persona used when none is chosen."""
        return self._by_key[persona_key(self.default_name)]

    def __iter__(self) -> Iterator[Persona]:
        """Personas sorted by name."""
        return iter(self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None
