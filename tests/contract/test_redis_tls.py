"""Redis over TLS with a password (rediss://:password@host:port/0), against a real TLS redis-server."""

from __future__ import annotations

import logging

import pytest

from bot.core.conversation import Turn
from bot.storage.keys import Keys
from bot.storage.redis_store import RedisStore, connect
from tests.conftest import TlsRedis
from tests.contract.test_redis_store import KEY


def tls_store(url: str, ca_file: object = None) -> RedisStore:
    client = connect(url, socket_timeout_s=2.0, tls_ca_file=ca_file)  # type: ignore[arg-type]
    return RedisStore(client, Keys("tls-test:"), conversation_ttl_s=60, dm_idle_reset_s=60, dedup_ttl_s=60)


async def test_the_store_works_over_tls_with_a_password_and_a_private_ca(tls_redis: TlsRedis) -> None:
    store = tls_store(tls_redis.url(), tls_redis.ca_file)
    try:
        assert await store.healthy()
        await store.append(KEY, Turn.user("over TLS"))
        assert [turn.text for turn in (await store.load(KEY)).turns] == ["over TLS"]
        assert await store.first_sightings("T1", ["event:Ev1"]) == [True]
        assert await store.first_sightings("T1", ["event:Ev1"]) == [False]
    finally:
        await store.client.flushdb()
        await store.close()


@pytest.mark.parametrize("problem", ["wrong password", "unknown CA"])
async def test_a_wrong_password_or_an_untrusted_certificate_is_an_outage_that_never_logs_the_password(
    tls_redis: TlsRedis, problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    if problem == "wrong password":
        url, ca_file = tls_redis.url(password="not-the-password"), tls_redis.ca_file
    else:  # the certificate is checked: without the private CA it is refused
        url, ca_file = tls_redis.url(), None
    store = tls_store(url, ca_file)
    try:
        assert not await store.healthy()
    finally:
        await store.close()
    assert tls_redis.password not in caplog.text and "not-the-password" not in caplog.text
