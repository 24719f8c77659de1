"""Leases on a thread: one answer at a time, and a process that lost its hold on the thread never writes to it.

A thread's lock is a lease that storage renews while it is held. A process cut off from storage for longer than the
lease may find another process answering in the thread when it comes back; the lease's fencing token (a number that
only grows per thread) is what every write of the thread is checked against, so the stale holder's writes are
refused (`LeaseLost`) instead of interleaving with the new holder's.

An answer in progress leaves an "open exchange" on the thread (see `OpenExchange`); the next holder that finds one
left by a lease that is gone closes it first (`closing_turns`), so the history stays valid and in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from bot.core import texts
from bot.core.conversation import OpenExchange, StoredConversation, TextBlock, ToolCallBlock, ToolResultBlock, Turn
from bot.core.errors import BotError
from bot.core.i18n import tr

# What the model reads in place of an answer that was never saved (model-facing, not shown to people).
INTERRUPTED_ANSWER = "(This answer was interrupted before it could be saved; it is missing from the conversation.)"
INTERRUPTED_TOOL_RESULT = "The answer was interrupted before this tool's result could be saved."


class LeaseLost(BotError):
    """The thread was taken over by another holder: this one must not write to it again."""

    def __init__(self, user_message: str | None = None) -> None:
        super().__init__(user_message if user_message is not None else tr(texts.LEASE_LOST))


class AnswerNotSaved(BotError):
    """Storage stayed unreachable longer than an answer may wait to save itself; the answer was shown, not kept."""

    def __init__(self) -> None:
        super().__init__(tr(texts.ANSWER_NOT_SAVED))


class Lease:
    """A held thread: `token` fences its writes; `lost` is set once storage says another holder has it."""

    def __init__(self, token: int) -> None:
        self.token = token
        self._lost = asyncio.Event()
        self.renewal_failures = 0  # renewals in a row that could not reach storage (the lease may be running out)
        # The thread as it stood when the lease was taken, when storage read it in the same round trip (Redis does,
        # on a first try): `ConversationStore.lock` sets it, the holder takes it instead of calling `load`.
        self.preloaded: StoredConversation | None = None
        self._ended = False

    @property
    def ended(self) -> bool:
        """The holder's last write also gave the thread up (ExchangeMark "finish"): there is nothing to release."""
        return self._ended

    def end(self) -> None:
        """Called by storage once a "finish" write has freed the thread."""
        self._ended = True

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    def lose(self) -> None:
        """Called by storage when it refused this token (a renewal or a write): it is never valid again."""
        self._lost.set()

    async def wait_lost(self) -> None:
        await self._lost.wait()

    def check(self) -> None:
        """Raise LeaseLost if storage already said the thread is someone else's (saves a round trip), or if this
        holder already gave it up: a write after the answer's last one would not be fenced any more."""
        if self.lost or self._ended:
            raise LeaseLost()


def abandoned(found: OpenExchange | None, lease: Lease) -> bool:
    """An open exchange left by another lease: that holder died or lost the thread, so it will never close it."""
    return found is not None and found.token != lease.token


def closing_turns(turns: Sequence[Turn], found: OpenExchange, *, interrupted: bool = True) -> list[Turn]:
    """Turns that close an answer that was cut short, so the conversation stays valid for the model.

    Tool calls without results get error results; with `interrupted` (another holder closing it), a question (or
    tool results) without an answer also gets a short assistant turn saying the answer was interrupted. An exchange
    whose last turn is already a complete answer needs nothing (only its marker is cleared).
    """
    if found.question_index >= len(turns):  # the question itself is not there (rewound, trimmed): nothing to close
        return []
    last = turns[-1]
    closing: list[Turn] = []
    if last.role == "assistant":
        calls = [block for block in last.blocks if isinstance(block, ToolCallBlock)]
        if not calls:
            return []
        results = tuple(
            ToolResultBlock(tool_call_id=call.id, text=INTERRUPTED_TOOL_RESULT, is_error=True) for call in calls
        )
        closing.append(Turn(role="user", blocks=results))
    if interrupted:
        closing.append(Turn(role="assistant", blocks=(TextBlock(text=INTERRUPTED_ANSWER),)))
    return closing
