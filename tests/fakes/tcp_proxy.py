"""A loopback TCP proxy a test can cut and restore, to stage an outage of a real server (Redis)."""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a TCP address or a unix socket; `cut()` drops every connection."""

    def __init__(
        self,
        *,
        target_host: str | None = None,
        target_port: int | None = None,
        unix_path: str | None = None,
        db: int = 0,
    ):
        self._target_host = target_host
        self._db = db
        self._target_port = target_port
        self._unix_path = unix_path
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()
        self.port = 0
        self.delay_s = 0.0  # added before each chunk is forwarded: a slow or far-away server
        self.requests = 0  # chunks the clients sent: one per round trip (a pipeline or script is one write)
        # A command whose request contains these bytes drops its connection (the rest goes through): one write
        # failing, e.g. an answer's save, while the lock's renewals still reach Redis.
        self.refuse_containing: bytes | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/{self._db}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Refuse new connections and reset the open ones, as a crashed or unreachable server would."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._pipes):
            writer.transport.abort()
        self._pipes.clear()

    async def restore(self) -> None:
        await self.start()

    async def stop(self) -> None:
        await self.cut()

    async def _open_target(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._unix_path:
            return await asyncio.open_unix_connection(self._unix_path)
        return await asyncio.open_connection(self._target_host, self._target_port)

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self._pipes.add(client_writer)  # a cut while the target is still being reached resets this one too
        try:
            target_reader, target_writer = await self._open_target()
        except OSError:
            self._pipes.discard(client_writer)
            client_writer.transport.abort()
            return
        if client_writer not in self._pipes:  # cut meanwhile: the connection must not outlive the outage
            target_writer.transport.abort()
            return
        self._pipes.add(target_writer)
        await asyncio.gather(
            self._pump(client_reader, target_writer, count=True), self._pump(target_reader, client_writer)
        )

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, count: bool = False) -> None:
        try:
            while data := await reader.read(65536):
                self.requests += count
                if count and self.refuse_containing is not None and self.refuse_containing in data:
                    break  # the finally below resets the connection, as a failing server would
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._pipes.discard(writer)
            with contextlib.suppress(Exception):
                writer.transport.abort()
