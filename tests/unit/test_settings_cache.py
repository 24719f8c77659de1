"""Channel personas and budgets are read through a copy: an answer does not pay a Redis round trip for them, a
change made here shows at once, one heard from another process at once, and one not heard within SETTINGS_CACHE_S."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from bot.storage.memory import MemoryStore
from bot.storage.settings_cache import CachedWorkspaceSettings

OPTIONS: dict[str, Any] = {"conversation_ttl_s": 3600, "dm_idle_reset_s": 60, "dedup_ttl_s": 600}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class CountingStore(MemoryStore):
    """A store whose change feed the test drives, as Redis Pub/Sub would: `hear` one change, `drop` the feed."""

    def __init__(self) -> None:
        super().__init__(**OPTIONS)
        self.reads = 0
        self.read_gate: asyncio.Event | None = None  # when set, a budgets reply waits for it (a slow round trip)
        self._feed: asyncio.Queue[str | None] = asyncio.Queue()

    def hear(self, workspace_id: str) -> None:
        self._feed.put_nowait(workspace_id)

    def drop(self) -> None:
        self._feed.put_nowait(None)

    async def follow_settings_changes(
        self, on_change: Callable[[str], None], on_ready: Callable[[], Awaitable[None]]
    ) -> None:
        await on_ready()
        while (workspace_id := await self._feed.get()) is not None:
            on_change(workspace_id)
        raise ConnectionError("the subscription broke")

    async def channel_persona(self, workspace_id: str, channel_id: str) -> str | None:
        self.reads += 1
        return await super().channel_persona(workspace_id, channel_id)

    async def budgets(self, workspace_id: str) -> dict[str, float | None]:
        self.reads += 1
        found = await super().budgets(workspace_id)
        if self.read_gate is not None:  # Redis has answered; the reply is still on its way
            await self.read_gate.wait()
        return found


async def test_reads_are_kept_for_a_few_seconds_and_local_changes_show_at_once() -> None:
    store, clock = CountingStore(), Clock()
    cached = CachedWorkspaceSettings(store, ttl_s=5.0, clock=clock)
    assert await cached.channel_persona("T1", "C1") is None
    assert await cached.budgets("T1") == {}
    assert await cached.channel_persona("T1", "C1") is None and await cached.budgets("T1") == {}
    assert store.reads == 2  # the second answer read neither from storage

    await cached.set_channel_persona("T1", "C1", "sql_expert")
    await cached.set_budget("T1", "month", 50.0)
    assert await cached.channel_persona("T1", "C1") == "sql_expert"
    assert await cached.budgets("T1") == {"month": 50.0}


async def test_a_change_made_by_another_process_shows_once_the_copy_lapses() -> None:
    store, clock = CountingStore(), Clock()
    cached = CachedWorkspaceSettings(store, ttl_s=5.0, clock=clock)
    assert await cached.budgets("T1") == {}
    await store.set_budget("T1", "user_day", 2.0)  # another process, straight to storage
    await store.set_channel_persona("T1", "C1", "technical_writer")
    assert await cached.budgets("T1") == {}
    clock.now += 5.1
    assert await cached.budgets("T1") == {"user_day": 2.0}
    assert await cached.channel_persona("T1", "C1") == "technical_writer"


async def test_a_caller_cannot_change_the_cached_budgets() -> None:
    cached = CachedWorkspaceSettings(MemoryStore(**OPTIONS), clock=Clock())
    (await cached.budgets("T1"))["month"] = 1.0
    assert await cached.budgets("T1") == {}


async def _hearing(cached: CachedWorkspaceSettings) -> None:
    cached.start()
    for _ in range(100):
        if cached.hearing:
            return
        await asyncio.sleep(0)
    raise AssertionError("never subscribed")


async def test_while_changes_are_heard_reads_are_kept_long_and_a_change_drops_only_its_workspace() -> None:
    store, clock = CountingStore(), Clock()
    cached = CachedWorkspaceSettings(store, ttl_s=5.0, heard_ttl_s=300.0, clock=clock)
    await _hearing(cached)
    assert await cached.budgets("T1") == {} and await cached.budgets("T2") == {}
    await store.set_budget("T1", "month", 3.0)  # another process
    await store.set_budget("T2", "month", 4.0)
    store.hear("T1")
    await asyncio.sleep(0)
    clock.now += 60  # far past the short copy, well within the long one
    assert await cached.budgets("T1") == {"month": 3.0}  # heard: read again
    assert await cached.budgets("T2") == {}  # nothing heard for T2: its copy stands
    assert store.reads == 3
    await cached.close()


async def test_a_read_under_way_when_a_change_is_heard_is_not_kept() -> None:
    store, clock = CountingStore(), Clock()
    cached = CachedWorkspaceSettings(store, ttl_s=5.0, heard_ttl_s=300.0, clock=clock)
    await _hearing(cached)
    store.read_gate = asyncio.Event()
    reading = asyncio.create_task(cached.budgets("T1"))  # its round trip is slow...
    await asyncio.sleep(0)
    await store.set_budget("T1", "month", 3.0)  # ...and a change is made and heard meanwhile
    store.hear("T1")
    await asyncio.sleep(0)
    store.read_gate.set()
    assert await reading == {}  # read before the change: right for its caller, but it must not be kept for 300 s
    store.read_gate = None
    assert await cached.budgets("T1") == {"month": 3.0}
    await cached.close()


async def test_when_the_feed_breaks_what_was_kept_long_is_dropped() -> None:
    store, clock = CountingStore(), Clock()
    cached = CachedWorkspaceSettings(store, ttl_s=5.0, heard_ttl_s=300.0, clock=clock)
    await _hearing(cached)
    assert await cached.budgets("T1") == {}
    await store.set_budget("T1", "month", 3.0)  # changed while the feed is about to break: never heard
    store.drop()
    for _ in range(10):
        await asyncio.sleep(0)
    assert not cached.hearing
    assert await cached.budgets("T1") == {"month": 3.0}
    await cached.close()
