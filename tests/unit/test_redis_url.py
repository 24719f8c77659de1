"""REDIS_URL with TLS and a password: the client gets the right options, and the password is never shown."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import ValidationError
from redis.asyncio.connection import SSLConnection

from bot.settings import Settings, describe_validation_error
from bot.storage.redis_store import connect, public_location
from bot.wiring import build_core

REQUIRED = {"slack_bot_token": "xoxb-1", "anthropic_api_key": "k", "slack_signing_secret": "s"}


async def test_a_cluster_seed_url_gives_every_node_tls_the_password_and_the_ca_file(tmp_path: Path) -> None:
    """Checked without a TLS cluster: the seed node's connection settings are what the client gives each node."""
    ca_file = tmp_path / "ca.pem"
    client = connect("rediss://:p%40ss@cache.internal:6380", tls_ca_file=ca_file, cluster=True)
    try:
        [seed] = client.nodes_manager.startup_nodes.values()  # type: ignore[attr-defined]
        assert seed.connection_class is SSLConnection
        options = seed.connection_kwargs
        assert (options["host"], options["port"], options["password"]) == ("cache.internal", 6380, "p@ss")
        assert options["ssl_ca_certs"] == str(ca_file)
    finally:
        await client.aclose()


async def test_a_rediss_url_gives_a_tls_client_with_the_password_and_the_ca_file(tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    client = connect("rediss://:p%40ss@cache.internal:6380/2", tls_ca_file=ca_file)
    try:
        pool = client.connection_pool
        assert pool.connection_class is SSLConnection
        options = pool.connection_kwargs
        assert (options["host"], options["port"], options["db"]) == ("cache.internal", 6380, 2)
        assert options["password"] == "p@ss"  # percent-encoded in the URL, as URLs require
        assert options["ssl_ca_certs"] == str(ca_file)
    finally:
        await client.aclose()


def test_the_logged_location_keeps_the_host_and_drops_the_credentials() -> None:
    assert public_location("rediss://:hunter2@cache.internal:6380/0") == "rediss://cache.internal:6380/0 (password)"
    assert public_location("redis://bot:hunter2@10.0.0.5/1?ssl_cert_reqs=none") == "redis://10.0.0.5/1 (password)"
    assert public_location("redis://localhost:6379") == "redis://localhost:6379"
    assert public_location("unix:///run/redis.sock") == "unix:///run/redis.sock"


async def test_start_up_names_the_redis_host_but_never_the_password(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text("not read until the first connection")
    url = "rediss://:hunter2@cache.internal:6380/0"
    settings = Settings(**REQUIRED, redis_url=url, redis_tls_ca_file=ca_file, _env_file=None)  # type: ignore[arg-type]
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.model_dump())
    core = build_core(settings)  # connects lazily: nothing is dialled here
    await core.close()
    assert "rediss://cache.internal:6380/0 (password)" in caplog.text
    assert "hunter2" not in caplog.text


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"redis_url": "http://:hunter2@cache:6379"}, "REDIS_URL: Value error, must start with redis://"),
        ({"redis_url": "redis://:hunter2@cache:6379", "redis_tls_ca_file": "/etc/hostname"}, "needs a rediss://"),
        ({"redis_url": "rediss://:hunter2@cache:6379", "redis_tls_ca_file": "/no/such/ca.pem"}, "no such file"),
    ],
)
def test_a_wrong_redis_setting_is_named_without_echoing_the_url(overrides: dict[str, str], expected: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(**REQUIRED, **overrides, _env_file=None)  # type: ignore[arg-type]
    line = describe_validation_error(caught.value)
    assert expected in line
    assert "hunter2" not in line
