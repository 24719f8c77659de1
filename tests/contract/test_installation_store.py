"""The Redis installation and OAuth state stores against a real Redis, as Bolt's OAuth flow and authorize use them."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis
from slack_sdk.oauth.installation_store import Bot, Installation

from bot import logs
from bot.storage.installations import (
    RedisInstallationStore,
    RedisInstallRate,
    RedisOAuthStateStore,
    TooManyInstallStates,
)
from bot.storage.keys import Keys
from bot.storage.token_crypto import TokenCipher
from tests.conftest import RedisTarget

OLD_KEY, NEW_KEY = TokenCipher.generate_key(), TokenCipher.generate_key()
CIPHER = TokenCipher.from_setting(OLD_KEY)


def installation(
    team: str | None = "T1",
    *,
    user: str = "U1",
    token: str = "xoxb-1",
    enterprise: str | None = None,
    org_wide: bool = False,
    refresh_token: str | None = None,
    expires_in: int | None = None,
) -> Installation:
    return Installation(
        app_id="A1",
        enterprise_id=enterprise,
        team_id=team,
        team_name=f"Team {team}",
        bot_token=token,
        bot_id="B1",
        bot_user_id="UBOT",
        bot_scopes="chat:write,commands",
        bot_refresh_token=refresh_token,
        bot_token_expires_in=expires_in,
        user_id=user,
        is_enterprise_install=org_wide,
        token_type="bot",
    )


@pytest.fixture
async def client(redis_target: RedisTarget, redis_client: redis.Redis) -> AsyncIterator[redis.Redis]:
    instance = redis_target.connect()
    yield instance
    await instance.aclose()


@pytest.fixture
def keys(redis_target: RedisTarget, key_prefix: str) -> Keys:
    return redis_target.keys(key_prefix)


@pytest.fixture
def store(client: redis.Redis, keys: Keys) -> RedisInstallationStore:
    return RedisInstallationStore(client, keys, cipher=CIPHER)


async def test_a_saved_installation_is_found_with_its_bot(store: RedisInstallationStore) -> None:
    await store.async_save(installation())

    found = await store.async_find_installation(enterprise_id=None, team_id="T1")
    bot = await store.async_find_bot(enterprise_id=None, team_id="T1")

    assert found is not None and bot is not None
    assert (found.team_id, found.user_id, found.bot_token, found.bot_scopes) == (
        "T1",
        "U1",
        "xoxb-1",
        ["chat:write", "commands"],
    )
    assert (bot.bot_token, bot.bot_id, bot.bot_user_id) == ("xoxb-1", "B1", "UBOT")
    assert await store.async_find_installation(enterprise_id=None, team_id="T2") is None
    assert await store.async_find_bot(enterprise_id=None, team_id="T2") is None


async def test_each_installer_is_kept_and_the_latest_wins(store: RedisInstallationStore) -> None:
    await store.async_save(installation(user="U1", token="xoxb-old"))
    await store.async_save(installation(user="U2", token="xoxb-new"))

    latest = await store.async_find_installation(enterprise_id=None, team_id="T1")
    first = await store.async_find_installation(enterprise_id=None, team_id="T1", user_id="U1")

    assert latest is not None and latest.user_id == "U2"
    assert first is not None and first.user_id == "U1"
    # The bot token is the workspace's latest, whichever installer's copy is read.
    assert latest.bot_token == first.bot_token == "xoxb-new"
    assert await store.async_find_installation(enterprise_id=None, team_id="T1", user_id="U3") is None


async def test_an_org_wide_install_serves_every_workspace_of_the_org(store: RedisInstallationStore) -> None:
    await store.async_save(installation(None, enterprise="E1", org_wide=True, token="xoxb-org"))

    # Bolt asks with the team the event happened in, and is_enterprise_install from the event.
    found = await store.async_find_installation(enterprise_id="E1", team_id="T7", is_enterprise_install=True)
    bot = await store.async_find_bot(enterprise_id="E1", team_id="T8", is_enterprise_install=True)

    assert found is not None and found.is_enterprise_install and found.bot_token == "xoxb-org"
    assert bot is not None and bot.bot_token == "xoxb-org"
    assert await store.async_find_installation(enterprise_id="E1", team_id="T7") is None
    assert await store.find_by_workspace("E1") is not None


async def test_a_workspace_install_inside_an_org_is_found_with_or_without_the_enterprise(
    store: RedisInstallationStore,
) -> None:
    await store.async_save(installation("T1", enterprise="E1"))

    assert await store.async_find_installation(enterprise_id="E1", team_id="T1") is not None
    assert await store.async_find_bot(enterprise_id=None, team_id="T1") is not None
    assert await store.find_by_workspace("T1") is not None


async def test_rotation_fields_round_trip_and_a_refreshed_bot_is_what_reads_return(
    store: RedisInstallationStore,
) -> None:
    await store.async_save(installation(token="xoxe.xoxb-1", refresh_token="xoxe-1-r1", expires_in=3600))
    stored = await store.async_find_installation(enterprise_id=None, team_id="T1")
    assert stored is not None and stored.bot_refresh_token == "xoxe-1-r1"
    assert stored.bot_token_expires_at is not None and abs(stored.bot_token_expires_at - (time.time() + 3600)) < 60

    later = int(time.time()) + 43_200
    refreshed = Bot(**stored.to_bot().to_dict_for_copying())
    refreshed.bot_token, refreshed.bot_refresh_token, refreshed.bot_token_expires_at = "xoxe.xoxb-2", "xoxe-1-r2", later
    await store.async_save_bot(refreshed)

    for found in (
        await store.async_find_installation(enterprise_id=None, team_id="T1"),
        await store.async_find_installation(enterprise_id=None, team_id="T1", user_id="U1"),
        await store.async_find_bot(enterprise_id=None, team_id="T1"),
    ):
        assert found is not None
        assert (found.bot_token, found.bot_refresh_token, found.bot_token_expires_at) == (
            "xoxe.xoxb-2",
            "xoxe-1-r2",
            later,
        )


async def test_deleting_the_bot_means_no_bot_token_is_handed_out(store: RedisInstallationStore) -> None:
    await store.async_save(installation())

    await store.async_delete_bot(enterprise_id=None, team_id="T1")

    found = await store.async_find_installation(enterprise_id=None, team_id="T1")
    assert found is not None and found.bot_token is None and found.user_id == "U1"
    assert await store.async_find_bot(enterprise_id=None, team_id="T1") is None


async def test_deleting_one_persons_installation_keeps_the_rest(store: RedisInstallationStore) -> None:
    await store.async_save(installation(user="U1"))
    await store.async_save(installation(user="U2"))

    await store.async_delete_installation(enterprise_id=None, team_id="T1", user_id="U2")

    # U2's copy, and `latest` since it was U2's, are gone; U1's and the bot stay.
    assert await store.async_find_installation(enterprise_id=None, team_id="T1") is None
    assert await store.async_find_installation(enterprise_id=None, team_id="T1", user_id="U2") is None
    assert await store.async_find_installation(enterprise_id=None, team_id="T1", user_id="U1") is not None
    assert await store.async_find_bot(enterprise_id=None, team_id="T1") is not None

    await store.async_delete_installation(enterprise_id=None, team_id="T1")
    assert await store.async_find_installation(enterprise_id=None, team_id="T1", user_id="U1") is None
    assert await store.async_find_bot(enterprise_id=None, team_id="T1") is not None


async def test_delete_all_forgets_one_workspace_or_org_only(store: RedisInstallationStore) -> None:
    await store.async_save(installation("T1"))
    await store.async_save(installation("T2", token="xoxb-2"))
    await store.async_save(installation(None, enterprise="E1", org_wide=True, token="xoxb-org"))

    await store.async_delete_all(enterprise_id=None, team_id="T1")
    await store.async_delete_all(enterprise_id="E1", team_id=None)

    assert await store.async_find_bot(enterprise_id=None, team_id="T1") is None
    assert await store.async_find_bot(enterprise_id="E1", team_id="T5", is_enterprise_install=True) is None
    survivor = await store.async_find_installation(enterprise_id=None, team_id="T2")
    assert survivor is not None and survivor.bot_token == "xoxb-2"


async def test_an_unreadable_entry_is_skipped_not_fatal(
    store: RedisInstallationStore, client: redis.Redis, keys: Keys
) -> None:
    await client.hset(keys.installation("T1"), mapping={"latest": "{not json", "bot": '{"nope": 1}'})

    assert await store.async_find_installation(enterprise_id=None, team_id="T1") is None
    assert await store.async_find_bot(enterprise_id=None, team_id="T1") is None


async def test_an_oauth_state_is_good_once_and_expires(client: redis.Redis, keys: Keys) -> None:
    states = RedisOAuthStateStore(client, keys, expiration_s=600)

    state = await states.async_issue()
    other = await states.async_issue()

    assert state != other and len(state) >= 32
    assert 0 < await client.ttl(keys.oauth_state(state)) <= 600
    assert await states.async_consume(state)
    assert not await states.async_consume(state), "a replayed state must be refused"
    assert not await states.async_consume("never-issued")
    assert not await states.async_consume("")
    assert await states.async_consume(other)


async def test_tokens_are_encrypted_at_rest_and_never_stored_in_plain(
    store: RedisInstallationStore, client: redis.Redis, keys: Keys
) -> None:
    await store.async_save(installation("T1", token="xoxb-at-rest-secret", user="U1"))

    stored = await client.hgetall(keys.installation("T1"))
    assert set(stored) == {"latest", "user:U1", "bot"}
    assert all(value.startswith("gAAAAA") and "xoxb-at-rest-secret" not in value for value in stored.values())
    found = await store.async_find_installation(enterprise_id=None, team_id="T1")
    assert found is not None and found.bot_token == "xoxb-at-rest-secret"


async def test_a_plain_json_record_from_before_encryption_is_read_once_and_re_encrypted(
    client: redis.Redis, keys: Keys
) -> None:
    name = keys.installation("T1")
    plain = RedisInstallationStore(client, keys, cipher=CIPHER)
    await plain.async_save(installation("T1", token="xoxb-legacy-token"))
    legacy = {field: CIPHER.decrypt(value)[0] for field, value in (await client.hgetall(name)).items()}
    await client.hset(name, mapping=legacy)  # as an older version of the bot left it: plain JSON
    assert (await client.hget(name, "bot")).startswith("{")

    found = await plain.async_find_installation(enterprise_id=None, team_id="T1")

    assert found is not None and found.bot_token == "xoxb-legacy-token"
    assert all(value.startswith("gAAAAA") for value in (await client.hgetall(name)).values())


async def test_rotating_the_key_keeps_old_records_readable_and_rewrites_them_with_the_new_key(
    client: redis.Redis, keys: Keys
) -> None:
    name = keys.installation("T1")
    await RedisInstallationStore(client, keys, cipher=CIPHER).async_save(installation("T1", token="xoxb-rotated"))
    rotated = RedisInstallationStore(client, keys, cipher=TokenCipher.from_setting(f"{NEW_KEY},{OLD_KEY}"))

    assert (await rotated.async_find_bot(enterprise_id=None, team_id="T1")).bot_token == "xoxb-rotated"  # type: ignore[union-attr]

    only_new = RedisInstallationStore(client, keys, cipher=TokenCipher.from_setting(NEW_KEY))
    found = await only_new.async_find_bot(enterprise_id=None, team_id="T1")
    assert found is not None and found.bot_token == "xoxb-rotated", "the read above rewrote it with the new key"
    assert await client.hget(name, "bot") is not None
    stranger = RedisInstallationStore(client, keys, cipher=TokenCipher.from_setting(OLD_KEY))
    assert await stranger.async_find_bot(enterprise_id=None, team_id="T1") is None  # skipped, with a warning


async def test_tokens_read_from_storage_are_redacted_from_log_lines(store: RedisInstallationStore) -> None:
    # Not shaped like any Slack token, so only its value can give it away (a future token format, a test token).
    await store.async_save(installation("T1", token="opaque-token-4f9a2c77e1"))
    await store.async_find_installation(enterprise_id=None, team_id="T1")
    assert logs.redact("token was opaque-token-4f9a2c77e1 here") == "token was [redacted] here"


async def test_live_oauth_states_are_capped(client: redis.Redis, keys: Keys) -> None:
    states = RedisOAuthStateStore(client, keys, expiration_s=600, max_live=3)
    issued = [await states.async_issue() for _ in range(3)]
    with pytest.raises(TooManyInstallStates):
        await states.async_issue()
    assert await states.async_consume(issued[0])
    assert await states.async_issue()  # a consumed state frees its place


async def test_install_visits_are_capped_per_client_address(client: redis.Redis, keys: Keys) -> None:
    rate = RedisInstallRate(client, keys, per_minute=2)
    assert await rate.admit("198.51.100.7") is None
    assert await rate.admit("198.51.100.7") is None
    assert await rate.admit("198.51.100.7") is not None
    assert await rate.admit("203.0.113.9") is None, "another address has its own allowance"
