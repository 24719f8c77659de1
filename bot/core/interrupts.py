"""Stopping a model call or a tool round part-way: an Interrupt fires, the stream's producer is cancelled in its own
task, and what was written so far is kept and billed (bot/core/answers.py decides when an answer's Interrupt fires).
Also: which question an answer cut off by its process's death was answering (`interrupted_question`)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
from collections.abc import AsyncIterator, Sequence
from typing import Literal, TypeVar, assert_never

from bot.core.conversation import TextBlock, ToolCallBlock, ToolResultBlock, Turn
from bot.core.events import (
    AttemptRestarted,
    ModelEvent,
    ModelTurnComplete,
    TextDelta,
    ThinkingStarted,
    ToolRunning,
    Usage,
    UsageSoFar,
)
from bot.core.metering import estimate_input_tokens
from bot.core.ports import ModelRequest

T = TypeVar("T")
_Entry = tuple[Literal["item", "end", "error", "stop"], object]

CHARS_PER_TOKEN = 4  # output tokens of a stopped call are estimated from its text: the API reports them at the end
STOPPED_TOOL_RESULT = "Stopped by the user before this tool finished."
# What a model call shows the user; UsageSoFar stays inside the core.
ShownModelEvent = TextDelta | ThinkingStarted | ToolRunning | AttemptRestarted | ModelTurnComplete


class Interrupt:
    """Fires when an answer must stop; a stream watched through it ends early and its producer is cancelled."""

    def __init__(self) -> None:
        self._fired = False
        self._watchers: set[asyncio.Queue[_Entry]] = set()

    def fire(self) -> None:
        self._fired = True
        for queue in self._watchers:
            queue.put_nowait(("stop", None))

    @property
    def stopped(self) -> bool:
        return self._fired

    async def until_stopped(self, source: AsyncIterator[T]) -> AsyncIterator[T]:
        """Items of `source` until Stop. The source runs in one task of its own (an SDK stream must be entered and
        left in the same task), which is cancelled at Stop: that closes the model's HTTP stream. Stop reaches the
        reader through the same queue as the items, so a streamed delta costs no task or wait of its own."""
        if self.stopped:
            await _close(source)
            return
        queue: asyncio.Queue[_Entry] = asyncio.Queue()

        async def pump() -> None:
            try:
                async for item in source:
                    queue.put_nowait(("item", item))
            except Exception as error:
                queue.put_nowait(("error", error))
            else:
                queue.put_nowait(("end", None))

        self._watchers.add(queue)
        producer = asyncio.create_task(pump())
        try:
            while True:
                kind, value = await queue.get()
                if kind == "stop" or kind == "end" or self.stopped:
                    return
                if kind == "error":
                    assert isinstance(value, Exception)
                    raise value
                yield value  # type: ignore[misc]  # "item" entries hold the source's own items
        finally:
            self._watchers.discard(queue)
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await producer


async def _close(source: AsyncIterator[object]) -> None:
    aclose = getattr(source, "aclose", None)
    if aclose is not None:
        await aclose()


async def shown_events(source: AsyncIterator[ModelEvent]) -> AsyncIterator[ShownModelEvent]:
    """A model call's events as they are shown and stored, for answers nobody can stop."""
    async for event in source:
        if not isinstance(event, UsageSoFar):
            yield event


async def stoppable_call(
    interrupt: Interrupt, source: AsyncIterator[ModelEvent], request: ModelRequest
) -> AsyncIterator[ShownModelEvent]:
    """A model call's events until Stop; then a ModelTurnComplete ("stopped") with the text and usage so far."""
    if interrupt.stopped:  # stopped before this call was made: nothing was sent, nothing to bill
        await _close(source)
        yield ModelTurnComplete(blocks=(), usage=Usage(), stop_reason="stopped", model=request.model)
        return
    progress: UsageSoFar | None = None
    text = ""
    unreported_chars = 0  # text since the last progress report, not yet in its output estimate
    async for event in interrupt.until_stopped(source):
        match event:  # exhaustive: a new model event must be placed here (mypy --strict checks assert_never)
            case UsageSoFar():
                progress, unreported_chars = event, 0
                continue
            case TextDelta():
                text += event.text
                unreported_chars += len(event.text)
            case AttemptRestarted():
                text = ""
            case ThinkingStarted() | ToolRunning() | ModelTurnComplete():
                pass
            case _:
                assert_never(event)
        yield event
        if isinstance(event, ModelTurnComplete):
            return
    if interrupt.stopped:
        yield _stopped_call(request, progress, text, unreported_chars)


def _stopped_call(
    request: ModelRequest, progress: UsageSoFar | None, text: str, unreported_chars: int
) -> ModelTurnComplete:
    """Bill what a cancelled call used: its reported input, and output estimated from what it wrote.

    Without a progress report the request was sent but nothing came back yet: its input is estimated, since the
    provider may already have read the prompt.
    """
    if progress is None:
        usage, model = Usage(input_tokens=estimate_input_tokens(request)), request.model
        provider = "anthropic"  # unknown: nothing came back; billed at the list price
    else:
        extra = math.ceil(unreported_chars / CHARS_PER_TOKEN)
        usage = dataclasses.replace(progress.usage, output_tokens=progress.usage.output_tokens + extra)
        model, provider = progress.model, progress.provider
    blocks = (TextBlock(text=text),) if text.strip() else ()
    return ModelTurnComplete(blocks=blocks, usage=usage, stop_reason="stopped", model=model, provider=provider)


def stopped_results(calls: Sequence[ToolCallBlock], results: Sequence[ToolResultBlock]) -> list[ToolResultBlock]:
    """Every tool call needs a result in history, or the thread cannot continue: stopped calls get an error one."""
    done = {result.tool_call_id: result for result in results}
    return [
        done.get(call.id) or ToolResultBlock(tool_call_id=call.id, text=STOPPED_TOOL_RESULT, is_error=True)
        for call in calls
    ]


def interrupted_question(turns: Sequence[Turn], asker_id: str) -> int | None:
    """The turn of the question an interrupted answer was answering: the thread's last question, if it is the asker's
    and no finished answer follows it (only tool rounds may). None when the question never reached history."""
    index = next(
        (
            i
            for i in range(len(turns) - 1, -1, -1)
            if turns[i].role == "user" and not all(isinstance(b, ToolResultBlock) for b in turns[i].blocks)
        ),
        None,
    )
    if index is None or turns[index].author_id != asker_id:
        return None
    for turn in turns[index + 1 :]:
        if turn.role == "assistant" and not any(isinstance(block, ToolCallBlock) for block in turn.blocks):
            return None  # answered: this is an earlier exchange, not the interrupted one
    return index
