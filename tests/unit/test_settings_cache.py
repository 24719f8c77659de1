"""Channel personas and budgets are read through a few seconds' copy: an answer does not pay a Redis round trip for
them, a change made here shows at once, and one made by another process within SETTINGS_CACHE_S."""

from __future__ import annotations

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
    def __init__(self) -> None:
        super().__init__(**OPTIONS)
        self.reads = 0

    async def channel_persona(self, workspace_id: str, channel_id: str) -> str | None:
        self.reads += 1
        return await super().channel_persona(workspace_id, channel_id)

    async def budgets(self, workspace_id: str) -> dict[str, float | None]:
        self.reads += 1
        return await super().budgets(workspace_id)


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
