"""Protocols the core relies on; storage and model adapters implement them, tests may fake them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Literal, Protocol

from bot.core.conversation import ConversationKey, Fold, IncomingFile, MeasuredSize, StoredConversation, Turn
from bot.core.events import ModelEvent
from bot.core.leases import Lease


@dataclass(frozen=True, slots=True)
class Attachment:
    """Processed media ready for the model: `data_b64` is base64, as the API wants it and as it is stored."""

    kind: Literal["image", "pdf"]
    media_type: str
    data_b64: str
    # Its size as the model reads it, for a budget reservation that covers it (None: not known, e.g. stored before
    # these were kept; the estimate then assumes the largest an image or a PDF can cost).
    width: int | None = None
    height: int | None = None
    pages: int | None = None  # PDFs


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool as the model sees it."""

    name: str
    description: str
    input_schema: dict[str, object]


@dataclass(frozen=True, slots=True)
class CallIntent:
    """What a call wants, whichever model takes it: fitted to each model's capabilities (thinking.fit_to_model)
    when the request is sent, so a fallback model never receives settings planned for another one."""

    answer_tokens: int  # room for the answer itself; a manual thinking budget comes on top
    thinking: str | int | None = None  # "adaptive", a manual budget in tokens, or None: no thinking
    effort: str | None = None
    manual_budget: int | None = None  # where adaptive is wanted but a model takes only a budget (from the triage)


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """Everything one model call needs; the stable system part comes first so a cached prefix can be reused."""

    model: str
    max_tokens: int
    system: tuple[str, ...]
    turns: tuple[Turn, ...]
    # Indices of system parts that end a cacheable segment (the persona's stable text; the thread's summary).
    cache_system_parts: tuple[int, ...] = ()
    folded_upto: int = 0  # the thread's turns before this index are folded into a summary (0: none)
    end_user_id: str | None = None
    fallback_models: tuple[str, ...] = field(default=())
    effort: str | None = None
    thinking: str | int | None = None  # None/"off", "adaptive", or a manual budget in tokens
    attachments: Mapping[str, Attachment] = field(default_factory=dict)  # MediaBlock.ref -> bytes to send
    tools: tuple[ToolSpec, ...] = ()
    web_search: bool = False  # the model provider's own web search tool
    tools_disabled: bool = False  # tools stay defined (history has tool calls) but none may be called
    intent: CallIntent | None = None  # None: thinking, effort and max_tokens above are what is wanted


class LanguageModel(Protocol):
    def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        """Yield text as it arrives and end with ModelTurnComplete; raise ModelUnavailable when retries run out."""
        ...


class CircuitBreaker(Protocol):
    """Per-provider health shared by every bot process: a provider that keeps failing is skipped for a cool-down,
    then one call probes it (half-open); success closes it again."""

    async def allow(self, provider: str) -> bool:
        """True when a call may go to `provider` now (closed, or this caller won the half-open probe)."""
        ...

    async def record_success(self, provider: str) -> None: ...

    async def record_failure(self, provider: str) -> None: ...


@dataclass(frozen=True, slots=True)
class ModelLimits:
    """What the provider says about a model; None where it does not say."""

    context_window: int | None = None
    max_output_tokens: int | None = None
    adaptive_thinking: bool | None = None
    manual_thinking: bool | None = None
    efforts: frozenset[str] | None = None  # the `effort` levels it accepts (empty: none)


class ModelCatalog(Protocol):
    async def limits(self, model: str) -> ModelLimits | None:
        """The model's limits (cached by the adapter), or None when the provider cannot say right now."""
        ...


class TokenCounter(Protocol):
    async def count_tokens(self, request: ModelRequest) -> int:
        """The exact input size of `request`; raises ModelUnavailable when it cannot be counted."""
        ...


# What a write does to the thread's open exchange (see OpenExchange). "finish" closes it and ends the writer's lease
# in the same step: the answer's last write, after which the thread's next question may take it at once.
ExchangeMark = Literal["open", "close", "finish"]


class ConversationStore(Protocol):
    """A thread's history. Writes given a `lease` are fenced: refused with LeaseLost (and the lease marked lost) once
    another holder has taken the thread, atomically with the write itself."""

    async def load(self, key: ConversationKey) -> StoredConversation:
        """What an answer needs: turn 0 and the turns from the fold's `upto` on (the folded ones are NOT_LOADED)."""
        ...

    async def append(
        self,
        key: ConversationKey,
        *turns: Turn,
        persona: str | None = None,
        measured: MeasuredSize | None = None,
        lease: Lease | None = None,
        exchange: ExchangeMark | None = None,
    ) -> None:
        """Add turns (and, for a new thread, its persona; after a call, its real size) and push the TTL forward.

        `exchange="open"` marks the first added turn as a question being answered by `lease` (see OpenExchange);
        `"close"` clears the mark: both in the same atomic step as the turns. `"finish"` clears it and ends `lease`
        (Lease.end): the holder writes no more, and leaving its `lock` then has nothing left to release. Sent again
        after a lost reply, a finish that was applied is not applied twice.
        """
        ...

    async def save_fold(self, key: ConversationKey, fold: Fold, *, lease: Lease | None = None) -> None:
        """Replace the thread's running summary; of the turns it folds only the most recent few are kept (for
        search_history), in the same atomic, fenced step. Turn indexes stay absolute."""
        ...

    async def folded(self, key: ConversationKey, upto: int) -> list[tuple[int, Turn]]:
        """The turns before `upto` (turn 0 aside) still kept, with their absolute indexes: `load` skips them."""
        ...

    async def forget(self, key: ConversationKey, *, lease: Lease | None = None) -> bool:
        """Delete the conversation (turns, summary, persona); True when there was one."""
        ...

    async def end_dm_session(self, workspace_id: str, channel_id: str) -> None:
        """The next DM message starts a fresh conversation."""
        ...

    async def exists(self, key: ConversationKey) -> bool: ...

    def lock(self, key: ConversationKey, *, order: float | None = None) -> AbstractAsyncContextManager[Lease]:
        """Hold the thread so two answers in it never interleave, across processes too; the Lease fences writes.

        Waiters take the thread in `order` (the question's time, epoch seconds; None: now), earliest first, so
        questions are stored in the order they were asked even when a later one finds the thread free first.

        The lease is renewed while held; a renewal storage refuses marks it lost (one that cannot reach storage is
        counted in `Lease.renewal_failures` and retried: the token stays valid until someone else takes the thread).
        """
        ...

    async def dm_session(self, workspace_id: str, channel_id: str, candidate_id: str) -> str:
        """The rolling DM conversation id: the current one, or `candidate_id` after an idle period."""
        ...

    async def rewind(
        self, key: ConversationKey, keep: int, *, lease: Lease | None = None, exchange: ExchangeMark | None = None
    ) -> None:
        """Keep only the first `keep` turns (Regenerate drops the answer it replaces); the caller holds the lock.

        `exchange="open"`: the last kept turn is a question `lease` now answers again (see OpenExchange)."""
        ...


class ChannelSettingsStore(Protocol):
    async def channel_persona(self, workspace_id: str, channel_id: str) -> str | None: ...

    async def set_channel_persona(self, workspace_id: str, channel_id: str, persona: str) -> None: ...


class ProfileCache(Protocol):
    """Short-lived copies of directory lookups (Slack users and channels), so a turn does not re-fetch them."""

    async def get_profile(self, kind: str, workspace_id: str, object_id: str) -> dict[str, str] | None: ...

    async def put_profile(self, kind: str, workspace_id: str, object_id: str, profile: dict[str, str]) -> None: ...


class FileSource(Protocol):
    async def fetch(self, workspace_id: str, file: IncomingFile) -> bytes:
        """The file's bytes, fetched with that workspace's credentials; raises MediaRefused when it must not or cannot
        be downloaded."""
        ...


class MediaPreparer(Protocol):
    def prepare(self, data: bytes, name: str) -> tuple[Attachment, str | None]:
        """Check the real type and fit the model's limits; returns the attachment and an optional note for the user.

        Raises MediaRefused for anything the model cannot be shown.
        """
        ...


class MediaStore(Protocol):
    async def get_media(self, workspace_id: str, refs: Sequence[str]) -> dict[str, Attachment]:
        """Whichever of `refs` are still stored (one round trip for all of a thread's media)."""
        ...

    async def put_media(self, workspace_id: str, ref: str, attachment: Attachment) -> None:
        """Kept with the conversations' time-to-live, so follow-ups reuse it instead of downloading again."""
        ...


class Approvals(Protocol):
    """Approve / Deny for tools that act on the world; shared across processes (the click may land on another)."""

    async def open(self, workspace_id: str, approval_id: str, user_id: str, ttl_s: int) -> None: ...

    async def wait(self, workspace_id: str, approval_id: str, timeout_s: float) -> bool | None:
        """True approved, False denied, None no decision in time."""
        ...

    async def decide(self, workspace_id: str, approval_id: str, user_id: str, approved: bool) -> str:
        """'ok', 'not_yours' (only the asker may decide), 'stopped' (its answer was stopped first, see `abandon`)
        or 'expired' (also: unknown in this workspace)."""
        ...

    async def abandon(self, workspace_id: str, approval_id: str) -> None:
        """Its answer stopped while the approval was pending: a later click is told so, and nothing runs."""
        ...


class EventLedger(Protocol):
    async def first_sightings(
        self, workspace_id: str, delivery_ids: Sequence[str], *, claim: str | None = None
    ) -> list[bool]:
        """For each id, True the first time it is seen within the de-duplication window; all marked seen at once.

        `claim` names the claimant: asked again with the same claim (a retry after a timeout, when the first try may
        have landed) an id it claimed is still True for it. None: a claim of its own for this call."""
        ...


@dataclass(frozen=True, slots=True)
class Allowance:
    """At most `limit` calls to `method` in any sliding `window_s` in one workspace (or one of its channels), shared
    by all processes; storage names its keys.

    A sliding window, because that is how the platforms this guards describe their limits ("50 per minute, bursts
    allowed"): a burst may spend the whole window at once.
    """

    method: str
    workspace_id: str
    limit: int
    window_s: float = 60.0
    channel_id: str = ""

    @property
    def bucket(self) -> str:
        """A name for this allowance's window ("chat.update:T123", "chat.postMessage:T123:C456")."""
        return ":".join(filter(None, (self.method, self.workspace_id, self.channel_id)))


@dataclass(frozen=True, slots=True)
class Granted:
    """What CallWindows.take_some granted: `calls` (0: refused, see `wait_s`), and the names of those granted ahead."""

    calls: int
    wait_s: float = 0.0
    ahead: tuple[str, ...] = ()


class CallWindows(Protocol):
    """Rate windows shared by every process, with promises: calls set aside for work already under way.

    An answer that starts showing itself promises its last call (the final edit), so calls nobody waits for (an
    interim edit, a new placeholder) never spend what an answer already on screen needs to finish.
    """

    async def take(
        self,
        allowances: Sequence[Allowance],
        *,
        keep: int | None = None,
        settle: Sequence[str] = (),
        spent: Sequence[float] = (),
        give_back: Sequence[str] = (),
    ) -> float:
        """Take one call from every allowance, all or none: 0.0, or seconds until asking again may succeed.

        `keep` None: only the limit counts (a necessary call; `settle` names the promises it fulfils, if any). An
        integer: an optional call, taken only if every promised call plus `keep` more stay free afterwards.
        `spent`: when (epoch seconds) calls were already made on settled promises, without asking: a promise
        counts as taken until settled, so recording them late never lets anyone overspend.
        `give_back`: calls granted ahead (`take_some`) that will not be made, taken out of the windows first.
        """
        ...

    async def take_some(self, allowances: Sequence[Allowance], *, keep: int, most: int, hold_s: float) -> Granted:
        """Optional calls for later too: `most` at once while every allowance stays at most half used with them (a
        quiet workspace), else one by `take`'s rule for `keep` (none: Granted.wait_s says how long to wait). The
        calls beyond the first count as made `hold_s` from now, the latest the caller may make them, so their window
        never ends before the real calls'; those not made are given back with a later `take`.
        """
        ...

    async def promise(
        self, allowance: Allowance, members: Sequence[str], *, keep: int, ttl_s: float, now: Sequence[Allowance] = ()
    ) -> bool:
        """Set calls aside (one per member) if every earlier promise plus `keep` more still fit; False if not.

        With `now`, one call of each of those allowances is taken at once too, all or nothing (one round trip).

        A promise lapses after `ttl_s`, so a process that dies mid-answer does not hold calls for good.
        """
        ...

    async def release(self, allowance: Allowance, members: Sequence[str]) -> None:
        """Give promised calls back unused (the answer ended without needing them)."""
        ...

    async def hold_off(self, allowance: Allowance, seconds: float) -> None:
        """Nobody takes from the allowance for this long (after a 429's Retry-After)."""
        ...


class WorkspacePurges(Protocol):
    """Deleting a departed workspace's stored data once its grace period is over, robust to restarts."""

    async def schedule(self, workspace_id: str, due_at: float) -> None:
        """Purge at `due_at` (epoch seconds); scheduling again moves the date."""
        ...

    async def cancel(self, workspace_id: str) -> bool:
        """Forget a pending purge (the workspace came back); True if one was pending."""
        ...

    async def claim_due(self, now: float, *, lease_s: float) -> list[str]:
        """Workspaces whose purge is due, each handed to one caller; unfinished claims come back after `lease_s`."""
        ...

    async def purge(self, workspace_id: str) -> int:
        """Delete the workspace's conversations, settings and caches (not its usage ledger); returns items deleted."""
        ...

    async def finish(self, workspace_id: str) -> None: ...


class HealthCheck(Protocol):
    async def healthy(self) -> bool: ...

    async def health_report(self) -> dict[str, str]:
        """What /healthz shows about storage; `{"redis": "ok", ...}` when healthy."""
        ...
