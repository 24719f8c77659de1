"""ReadAhead: an answer's events are read from the start, in one task, and handed over in order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.slack.read_ahead import ReadAhead


async def test_events_are_read_before_anyone_asks_and_handed_over_in_order() -> None:
    started = asyncio.Event()

    async def events() -> AsyncIterator[str]:
        started.set()
        for word in ("one", "two", "three"):
            yield word

    ahead = ReadAhead(events())
    await asyncio.wait_for(started.wait(), 1.0)  # while the caller is busy elsewhere, e.g. posting a placeholder
    assert [event async for event in ahead] == ["one", "two", "three"]
    assert [event async for event in ahead] == []  # ended for good


async def test_an_error_arrives_after_the_events_before_it() -> None:
    async def events() -> AsyncIterator[str]:
        yield "partial"
        raise ValueError("model went away")

    seen = []
    with pytest.raises(ValueError, match="model went away"):
        async for event in ReadAhead(events()):
            seen.append(event)
    assert seen == ["partial"]


async def test_every_step_runs_in_one_task_so_context_managers_stay_in_it() -> None:
    tasks = []

    async def events() -> AsyncIterator[int]:
        async with asyncio.timeout(5):  # asyncio.timeout must be left in the task that entered it
            for n in range(3):
                tasks.append(asyncio.current_task())
                yield n
                await asyncio.sleep(0)

    assert [n async for n in ReadAhead(events())] == [0, 1, 2]
    assert len(set(tasks)) == 1 and tasks[0] is not asyncio.current_task()


async def test_stop_lets_the_events_clean_up_and_ends_the_reading() -> None:
    cleaned = asyncio.Event()

    async def events() -> AsyncIterator[str]:
        try:
            yield "first"
            await asyncio.sleep(60)  # e.g. waiting for the model
            yield "never"
        finally:
            cleaned.set()

    ahead = ReadAhead(events())
    assert await anext(ahead) == "first"
    await ahead.stop()
    assert cleaned.is_set()  # the clean-up has run by the time stop() returns
    assert [event async for event in ahead] == []
