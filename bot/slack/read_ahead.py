"""Reads an answer's events ahead, in a task of their own, so the answer is prepared while Slack is being called."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Failed:
    error: Exception


_END = object()


class ReadAhead(Generic[T]):
    """Starts iterating `events` at once; iterating the ReadAhead yields them in order, and raises what they raised.

    Posting the placeholder takes a round trip to Slack. Started only after it, the answer's own preparation
    (history from Redis, the prompt, the model's time to first token) added that round trip to the time until the
    first words show. Every step of `events` runs in the one task made here, so what `events` opens and closes
    (a lock, a timeout, the model's HTTP stream) is entered and left in the same task.
    """

    def __init__(self, events: AsyncIterator[T]) -> None:
        self._queue: asyncio.Queue[T | _Failed | object] = asyncio.Queue()
        self._task = asyncio.create_task(self._pump(events))

    async def _pump(self, events: AsyncIterator[T]) -> None:
        outcome: _Failed | object = _END
        try:
            async for event in events:
                self._queue.put_nowait(event)
        except Exception as error:
            outcome = _Failed(error)
        finally:
            self._queue.put_nowait(outcome)  # even when stopped: whoever is reading is never left waiting

    def __aiter__(self) -> ReadAhead[T]:
        return self

    async def __anext__(self) -> T:
        item = await self._queue.get()
        if item is _END:
            self._queue.put_nowait(_END)  # ended for good: a later call ends too
            raise StopAsyncIteration
        if isinstance(item, _Failed):
            raise item.error
        return item  # type: ignore[return-value]  # anything but the two markers is an event

    async def stop(self, *, cleanup_s: float = 10.0) -> None:
        """Stop reading: `events` gets a CancelledError where it waits, and its clean-up (releasing the thread's lock,
        ending the Stop watcher) is waited for, so it never runs after shutdown has closed Redis."""
        if self._task.done():
            return
        self._task.cancel()
        await asyncio.wait({self._task}, timeout=cleanup_s)
