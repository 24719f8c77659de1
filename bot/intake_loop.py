"""Where Slack's port runs, and how its requests reach the bot: on the bot's own event loop, or on a thread of its own.

Under a burst the bot's loop runs hundreds of answers at once, and an HTTP request served on that loop waits its
turn among them: Slack's ack (3 s, or it delivers again) was the first thing to suffer (issue 15: ack p99 1.5 s at
200 questions at once). `IntakeThread` serves the public port on a second event loop in a thread of its own, where a
request is read, verified and acked without waiting for the bot's loop; the work is then handed to the bot's loop.
Everything that touches the bot's state (Bolt's dispatch, Redis, the OAuth flow) still runs on the bot's loop.

Both bridges offer the same three operations, so `bot.server` is written once for either:
- `run(work)`: await `work` on the bot's loop from the port's loop (for requests whose answer depends on it);
- `admit(work)`: hand `work` to the bot's loop without waiting; False once the gate is closed (shutting down);
- `settle(timeout)`, on the bot's loop: close the gate, then wait for the work already admitted.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

from aiohttp import web

log = logging.getLogger(__name__)

T = TypeVar("T")
Work = Coroutine[Any, Any, T]

# How often the interpreter offers the GIL to another thread (default 5 ms). The intake thread holds the GIL only
# for a request's own work, so a shorter slice lets an ack through while the bot's loop is busy streaming.
SWITCH_INTERVAL_S = 0.001
INTAKE_START_TIMEOUT_S = 10.0


class LoopBridge(Protocol):
    async def run(self, work: Work[T]) -> T: ...

    def admit(self, work: Work[Any]) -> bool: ...

    async def settle(self, timeout_s: float) -> None: ...


class SameLoop:
    """The port on the bot's own loop (tests, and embedding): admitted work becomes a task of that loop."""

    def __init__(self) -> None:
        self._pending: set[asyncio.Task[Any]] = set()
        self._closed = False

    async def run(self, work: Work[T]) -> T:
        return await work

    def admit(self, work: Work[Any]) -> bool:
        if self._closed:
            work.close()
            return False
        task = asyncio.ensure_future(work)
        self._pending.add(task)
        task.add_done_callback(_finished(self._pending.discard))
        return True

    async def settle(self, timeout_s: float) -> None:
        self._closed = True
        if self._pending:
            await asyncio.wait(list(self._pending), timeout=timeout_s)


class IntakeThread:
    """A thread running its own event loop for the public port; built from the bot's loop (`bot_loop`)."""

    def __init__(self, bot_loop: asyncio.AbstractEventLoop) -> None:
        self._bot_loop = bot_loop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._lock = threading.Lock()
        self._pending: set[concurrent.futures.Future[Any]] = set()
        self._closed = False

    async def run(self, work: Work[T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, self._bot_loop))

    def admit(self, work: Work[Any]) -> bool:
        with self._lock:
            if self._closed:
                work.close()
                return False
            future = asyncio.run_coroutine_threadsafe(work, self._bot_loop)
            self._pending.add(future)
        future.add_done_callback(_finished(self._forget))
        return True

    def _forget(self, future: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._pending.discard(future)

    async def settle(self, timeout_s: float) -> None:
        with self._lock:
            self._closed = True
            pending = list(self._pending)
        if pending:
            await asyncio.wait([asyncio.wrap_future(future) for future in pending], timeout=timeout_s)

    async def serve(self, build: Callable[[], web.Application], host: str, port: int) -> tuple[str, int]:
        """Start the thread and serve `build()`'s app on host:port there; returns the address it listens on."""
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        started: concurrent.futures.Future[tuple[str, int]] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._main, args=(build, host, port, started), name="slack-intake")
        self._thread.daemon = True  # never keeps a dying process alive; `stop` ends it in order
        self._thread.start()
        return await asyncio.wait_for(asyncio.wrap_future(started), INTAKE_START_TIMEOUT_S)

    def _main(
        self, build: Callable[[], web.Application], host: str, port: int, started: concurrent.futures.Future[Any]
    ) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            started.set_result(loop.run_until_complete(self._start(build, host, port)))
        except BaseException as error:  # the bot's loop hears of it (a taken port, say) through `serve`
            started.set_exception(error)
            loop.close()
            return
        loop.run_forever()
        loop.run_until_complete(self._cleanup())
        loop.close()

    async def _start(self, build: Callable[[], web.Application], host: str, port: int) -> tuple[str, int]:
        self._runner = web.AppRunner(build(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        address = self._runner.addresses[0]
        return str(address[0]), int(address[1])

    async def _cleanup(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def stop(self) -> None:
        """Close the port (requests in flight are answered first) and end the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        with contextlib.suppress(RuntimeError):  # the loop already stopped
            loop.call_soon_threadsafe(loop.stop)
        await asyncio.to_thread(thread.join, INTAKE_START_TIMEOUT_S)


def _finished(forget: Callable[[Any], None]) -> Callable[[Any], None]:
    """A done-callback that forgets the work and logs what it raised (nobody else awaits it)."""

    def done(future: Any) -> None:
        forget(future)
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:
            log.error("work handed over from the Slack port failed: %s", type(error).__name__, exc_info=error)

    return done
