"""A departed workspace's data against a real Redis: every key names its workspace, and the delayed purge deletes one
workspace's conversations and settings (never another's, never the usage ledger), carried out once, across restarts."""

from __future__ import annotations

import inspect
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import redis.asyncio as redis

from bot.core.conversation import ConversationKey, Turn
from bot.core.events import Usage
from bot.core.ports import Allowance, Attachment, WorkspacePurges
from bot.core.usage import UsageRecord
from bot.core.workspaces import WorkspaceRetention
from bot.storage.call_windows import RedisCallWindows
from bot.storage.installations import RedisInstallationStore
from bot.storage.keys import Keys, UsageKeys
from bot.storage.memory import MemoryStore
from bot.storage.memory_workspaces import MemoryWorkspacePurges
from bot.storage.redis_store import RedisStore
from bot.storage.usage_ledger import RedisUsageLedger
from bot.storage.workspace_data import RedisWorkspacePurges
from tests.conftest import RedisTarget
from tests.contract.test_installation_store import CIPHER, installation

# Keys builders whose keys the purge leaves alone, and why (the purge's docstring says the same).
NOT_PURGED = {
    "installation": "deleted at once on uninstall; a purge racing a reinstall must not delete the new one",
    "token_refresh_lock": "a lock that lives seconds",
    "oauth_state": "global: issued before the workspace is known",
    "pending_purges": "global: the schedule itself",
    "answer_stops_channel": "global: a pub/sub channel, which stores nothing",
    "settings_changes_channel": "global: a pub/sub channel, which stores nothing",
    "oauth_states_live": "global: the index of live OAuth states, which belong to no workspace yet",
    "install_rate": "global: install visits per client address, gone after two minutes",
    "provider_breaker": "global: a Claude provider's health, shared by every workspace; expires by itself",
    "live_answers": "global: the index of answers being written; a departed workspace's leave it at the next sweep",
}
SAMPLE_ARGS = {
    "key": ConversationKey("T1", "C1", "1700000000.000100"),
    "workspace_id": "T1",
    "channel_id": "C1",
    "ref": "F1",
    "approval_id": "a1b2",
    "kind": "user",
    "object_id": "U1",
    "delivery_id": "event:Ev1",
    "method": "chat.update",
    "state": "s1",
    "answer_id": "ans1",
    "day": "2026-11-26",
    "pane_id": "D1",
    "thread_id": "1700000000.000300",
    "address": "198.51.100.7",
    "minute": 29_000_000,
    "provider": "bedrock",
}


@pytest.fixture
async def store(redis_target: RedisTarget, key_prefix: str, redis_client: redis.Redis) -> AsyncIterator[RedisStore]:
    instance = RedisStore(
        redis_target.connect(),
        redis_target.keys(key_prefix),
        conversation_ttl_s=3600,
        dm_idle_reset_s=60,
        dedup_ttl_s=600,
    )
    yield instance
    await instance.close()


def every_key_of(keys: Keys) -> dict[str, str]:
    """One key from each Keys builder, for workspace T1."""
    built = {}
    # The class's own functions, not inspect.getmembers(keys): on Python < 3.11.4 that raises on a slotted frozen
    # dataclass (its __weakref__ descriptor), and 3.11.0+ is supported.
    for name, function in vars(type(keys)).items():
        if name.startswith("_") or name == "workspace_data" or not inspect.isfunction(function):
            continue
        method = getattr(keys, name)
        params = inspect.signature(method).parameters
        built[name] = method(**{param: SAMPLE_ARGS[param] for param in params})
    return built


@pytest.mark.parametrize("hash_tags", [False, True], ids=["single", "cluster"])
def test_every_key_but_the_global_ones_names_its_workspace_and_is_purged(key_prefix: str, hash_tags: bool) -> None:
    keys = Keys(key_prefix, hash_tags=hash_tags)
    glob, t1 = keys.workspace_data("T1")
    _, t2 = keys.workspace_data("T2")
    _, t11 = keys.workspace_data("T11")

    built = every_key_of(keys)
    purged = {name for name, key in built.items() if t1.fullmatch(key)}

    # A new key builder fails here until someone decides whether a departed workspace's purge deletes it.
    assert purged == set(built) - set(NOT_PURGED), "add the key to Keys.workspace_data, or to NOT_PURGED with why"
    for name, key in built.items():
        assert not t2.fullmatch(key) and not t11.fullmatch(key), f"{name}: {key} matched another workspace"
        names = ("oauth_state", "pending_purges", "answer_stops_channel", "oauth_states_live", "install_rate")
        names += ("live_answers", "settings_changes_channel")
        if name not in (*names, "provider_breaker"):
            assert re.search(r":\{?T1(?:[:}]|$)", key), f"{name}: {key} does not name its workspace"
            if hash_tags:  # on a cluster, the workspace (or one of its conversations) picks the slot
                assert re.search(r"\{T1[:}]", key), f"{name}: {key} is not in its workspace's hash tag"
    assert glob == f"{key_prefix}*T1*"


async def fill(store: RedisStore, ledger: RedisUsageLedger, installations: RedisInstallationStore, ws: str) -> None:
    """One of everything a workspace leaves behind."""
    key = ConversationKey(ws, "C1", "1700000000.000100")
    await store.append(key, Turn.user("hello", author_id="U1"), persona="default")
    await store.set_channel_persona(ws, "C1", "code_reviewer")
    await store.put_media(ws, "F1", Attachment(kind="image", media_type="image/png", data_b64="AAAA"))
    await store.set_budget(ws, "month", 10.0)
    await store.open(ws, "a1", "U1", ttl_s=60)
    await store.put_profile("user", ws, "U1", {"display_name": "Ada"})
    await store.dm_session(ws, "D1", "1700000000.000200")
    await store.first_sightings(ws, ["event:Ev1"])
    windows = RedisCallWindows(store.client, store.keys)
    await windows.promise(Allowance("chat.update", ws, 45), ["a1#final"], keep=0, ttl_s=60)
    await windows.take([Allowance("chat.update", ws, 45)])
    await windows.take([Allowance("chat.postMessage", ws, 4, 5.0, "C1")])
    await windows.hold_off(Allowance("chat.update", ws, 45), 1.0)
    usage = Usage(10, 5)
    await ledger.record(UsageRecord(ws, "U1", "C1", "default", "claude-x", usage, 0.01, True, datetime.now(UTC)))
    await installations.async_save(installation(ws))


async def keys_of(client: redis.Redis, prefix: str, workspace: str) -> set[str]:
    return {key async for key in client.scan_iter(match=f"{prefix}*{workspace}*")}


async def test_a_purge_deletes_one_workspaces_data_but_not_its_usage_or_another_workspace(
    store: RedisStore, redis_client: redis.Redis, key_prefix: str
) -> None:
    ledger = RedisUsageLedger(store.client, UsageKeys(key_prefix, hash_tags=store.keys.hash_tags))
    installations = RedisInstallationStore(store.client, store.keys, cipher=CIPHER)
    purges = RedisWorkspacePurges(store.client, store.keys)
    await fill(store, ledger, installations, "T1")
    await fill(store, ledger, installations, "T2")
    t2_before = await keys_of(redis_client, key_prefix, "T2")

    deleted = await purges.purge("T1")

    left = await keys_of(redis_client, key_prefix, "T1")
    assert deleted >= 10
    usage, installation = UsageKeys(key_prefix, hash_tags=store.keys.hash_tags), store.keys.installation("T1")
    usage_prefix = usage.reserved("T1").removesuffix("reserved")
    assert all(k.startswith(usage_prefix) or k == installation for k in left), left
    assert any(k.startswith(usage_prefix) for k in left), "usage history is kept"
    assert (await store.load(ConversationKey("T1", "C1", "1700000000.000100"))).turns == []
    assert await store.channel_persona("T1", "C1") is None
    assert await keys_of(redis_client, key_prefix, "T2") == t2_before
    assert await store.channel_persona("T2", "C1") == "code_reviewer"
    assert await purges.purge("T1") == 0


async def test_a_due_purge_is_claimed_once_and_comes_back_if_its_claimer_died(store: RedisStore) -> None:
    purges = RedisWorkspacePurges(store.client, store.keys)
    await purges.schedule("T1", due_at=100.0)
    await purges.schedule("T2", due_at=500.0)

    assert await purges.claim_due(200.0, lease_s=60) == ["T1"]
    assert await purges.claim_due(200.0, lease_s=60) == [], "claimed already: no second process purges it"
    assert await purges.claim_due(261.0, lease_s=60) == ["T1"], "its claimer never finished: it comes back"
    await purges.finish("T1")
    assert await purges.claim_due(400.0, lease_s=60) == []
    assert await purges.cancel("T2")
    assert not await purges.cancel("T2")
    assert await purges.claim_due(1000.0, lease_s=60) == []


async def test_retention_purges_after_the_grace_period_unless_the_workspace_returns(
    store: RedisStore, redis_client: redis.Redis, key_prefix: str
) -> None:
    now = [1_000.0]
    retention = WorkspaceRetention(RedisWorkspacePurges(store.client, store.keys), grace_s=60, clock=lambda: now[0])
    for ws in ("T1", "T2"):
        await store.set_channel_persona(ws, "C1", "sql_expert")

    await retention.left("T1")
    await retention.left("T2")
    assert await retention.purge_due() == []
    await retention.returned("T2")
    now[0] += 61
    assert await retention.purge_due() == ["T1"]

    assert await store.channel_persona("T1", "C1") is None
    assert await store.channel_persona("T2", "C1") == "sql_expert"
    assert await retention.purge_due() == []


@pytest.fixture(params=["redis", "memory"])
def purges(request: pytest.FixtureRequest, store: RedisStore) -> WorkspacePurges:
    """The schedule's contract, over Redis and over the in-memory twin."""
    if request.param == "memory":
        return MemoryWorkspacePurges(MemoryStore(conversation_ttl_s=3600, dm_idle_reset_s=60, dedup_ttl_s=600))
    return RedisWorkspacePurges(store.client, store.keys)


async def test_a_due_purge_is_claimed_once_on_either_backend(purges: WorkspacePurges) -> None:
    await purges.schedule("T1", due_at=100.0)
    await purges.schedule("T2", due_at=500.0)
    await purges.schedule("T2", due_at=150.0)  # scheduling again moves the date
    assert sorted(await purges.claim_due(200.0, lease_s=60)) == ["T1", "T2"]
    assert await purges.claim_due(200.0, lease_s=60) == []
    assert sorted(await purges.claim_due(261.0, lease_s=60)) == ["T1", "T2"], "unfinished claims come back"
    await purges.finish("T1")
    assert await purges.cancel("T2")
    assert await purges.claim_due(10_000.0, lease_s=60) == []


async def test_the_memory_purge_deletes_one_workspaces_data_only() -> None:
    memory = MemoryStore(conversation_ttl_s=3600, dm_idle_reset_s=60, dedup_ttl_s=600)
    for workspace in ("T1", "T2"):
        await memory.append(ConversationKey(workspace, "C1", "1.0"), Turn.user("hi", author_id="U1"))
        await memory.set_channel_persona(workspace, "C1", "code_reviewer")
        await memory.put_profile("user", workspace, "U1", {"name": "Ann"})
    assert await MemoryWorkspacePurges(memory).purge("T1") == 3
    assert not await memory.exists(ConversationKey("T1", "C1", "1.0"))
    assert await memory.channel_persona("T1", "C1") is None
    assert await memory.get_profile("user", "T1", "U1") is None
    assert await memory.exists(ConversationKey("T2", "C1", "1.0"))
    assert await memory.get_profile("user", "T2", "U1") == {"name": "Ann"}
