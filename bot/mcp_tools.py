"""MCP servers as registry tools: connect to each configured server, list its tools, and call them for Claude.

Each server's connection lives in one task of its own for the bot's lifetime: anyio (under the MCP SDK) requires
a connection's task groups and cancel scopes to be opened and closed by the same task, and `start`/`close` are
called from different tasks. Tool calls only send requests through that connection, so they may run concurrently.

A server that goes away (its process dies, its URL stops answering: seen by a failed call or a periodic ping) is
connected again by that task, backing off between tries; meanwhile its tools are not offered to Claude, and a call
already made says plainly that the server is unavailable.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import logging
import math
import re
from contextlib import AsyncExitStack
from typing import Any

import anyio
import httpx2
from mcp import Client, MCPError, StdioServerParameters
from mcp.client import Transport
from mcp.client.streamable_http import streamable_http_client
from mcp.types import (
    CONNECTION_CLOSED,
    AudioContent,
    CallToolResult,
    ContentBlock,
    EmbeddedResource,
    ImageContent,
    ResourceLink,
    TextContent,
    TextResourceContents,
)
from mcp.types import Tool as McpTool

from bot.core import texts
from bot.core.i18n import tr
from bot.core.tools.registry import Tool, ToolContext, ToolError
from bot.mcp_config import McpServerConfig as McpServerConfig
from bot.mcp_config import load_mcp_config as load_mcp_config

log = logging.getLogger(__name__)

# Claude's rule for tool names (the Messages API rejects the whole request otherwise).
TOOL_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MAX_TOOL_NAME_CHARS = 64
# A server that lists tools forever must not hang start-up.
MAX_TOOL_PAGES = 100
# How long `close` lets a server shut down politely (stdio: close stdin, then SIGTERM; HTTP: DELETE the session).
CLOSE_GRACE_S = 10.0
# Matches the SDK's own default HTTP client: long reads, because a server may hold a response stream open.
HTTP_READ_TIMEOUT_S = 300.0
# An idle connection is pinged this often, so a server that went away is noticed (and reconnected) before a call.
HEALTH_CHECK_S = 30.0
# Reconnecting waits this long after a disconnect, doubling after each failed try up to the second figure.
RECONNECT_BACKOFF_S = (1.0, 60.0)


class _Connection:
    """One server's MCP client, opened, watched and reopened inside a task of its own (see the module docstring)."""

    def __init__(
        self,
        config: McpServerConfig,
        *,
        health_check_s: float = HEALTH_CHECK_S,
        backoff_s: tuple[float, float] = RECONNECT_BACKOFF_S,
    ) -> None:
        self.config = config
        self.listed: list[McpTool] = []
        self._health_check_s = health_check_s
        self._backoff_s = backoff_s
        self._client: Client | None = None
        self._stop = asyncio.Event()
        self._lost = asyncio.Event()  # a call found the connection closed
        self._wake = asyncio.Event()  # stop or lost: the watching task looks now
        self._scope: anyio.CancelScope | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self._client is not None

    async def open(self) -> None:
        """Connect and list the tools within `timeout_s`; raises whatever stopped it."""
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._own(ready), name=f"mcp-server:{self.config.name}")
        await ready

    async def _own(self, ready: asyncio.Future[None]) -> None:
        """The first connection (its failure is `open`'s), then a new one after every disconnect until closed."""
        delay = self._backoff_s[0]
        while not self._stop.is_set():
            try:
                await self._session(ready)
                delay = self._backoff_s[0]
            except Exception as error:
                if not ready.done():
                    ready.set_exception(error)
                    return
                name, reason = self.config.name, _reason(error)
                log.warning("MCP server %r unavailable (%s); reconnecting in %g s", name, reason, delay)
            if self._stop.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
            delay = min(delay * 2, self._backoff_s[1])
        if not ready.done():
            ready.set_exception(TimeoutError("stopped while starting"))

    async def _session(self, ready: asyncio.Future[None]) -> None:
        """One connection: open it within `timeout_s`, then watch it until closed (returns) or lost (raises)."""
        try:
            # The deadline covers connecting and listing only; it is lifted once the server is ready.
            with anyio.CancelScope(deadline=anyio.current_time() + self.config.timeout_s) as scope:
                self._scope = scope
                async with AsyncExitStack() as stack:
                    client = Client(self._transport(stack))
                    await stack.enter_async_context(client)
                    listed = await _list_tools(client)
                    scope.deadline = math.inf
                    self._lost.clear()
                    self._client = client
                    if ready.done():
                        log.info("MCP server %r reconnected", self.config.name)
                    else:
                        self.listed = listed
                        ready.set_result(None)
                    await self._watch(client)
        finally:
            self._client = None
        if scope.cancelled_caught and not self._stop.is_set():
            raise TimeoutError(f"timed out after {self.config.timeout_s:g} s")

    async def _watch(self, client: Client) -> None:
        """Until closed: a ping every `health_check_s` while idle; a failed ping or call ends the connection."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._health_check_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            if self._lost.is_set():
                raise ConnectionError("the connection was closed")
            with anyio.fail_after(self.config.timeout_s):
                await client.send_ping()

    def _transport(self, stack: AsyncExitStack) -> StdioServerParameters | Transport:
        config = self.config
        if config.command is not None:
            return StdioServerParameters(command=config.command, args=list(config.args), env=dict(config.env) or None)
        assert config.url is not None  # load_mcp_config guarantees one of the two
        http = httpx2.AsyncClient(
            headers=dict(config.headers), timeout=httpx2.Timeout(config.timeout_s, read=HTTP_READ_TIMEOUT_S)
        )
        # Registered before the transport, so it closes after it (the SDK leaves a client it was given open).
        stack.push_async_callback(http.aclose)
        return streamable_http_client(config.url, http_client=http)

    async def call(self, tool: str, arguments: dict[str, Any]) -> str:
        """Call one tool; any failure is a ToolError Claude can read."""
        client = self._client
        if client is None:
            raise ToolError(f"MCP server {self.config.name!r} is not available")
        try:
            result = await client.call_tool(tool, arguments)
        except MCPError as error:
            if error.code == CONNECTION_CLOSED:
                raise self._unavailable() from None
            raise ToolError(f"MCP server {self.config.name!r} refused {tool}: {error.message}") from None
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream, OSError, httpx2.HTTPError):
            raise self._unavailable() from None
        except Exception as error:  # e.g. structured output that breaks the tool's own schema
            log.warning("MCP tool %s on %r failed", tool, self.config.name, exc_info=True)
            raise ToolError(f"MCP server {self.config.name!r} failed to run {tool}: {_reason(error)}") from None
        text = _result_text(result)
        if result.is_error:
            raise ToolError(text or f"{tool} failed on MCP server {self.config.name!r}")
        return text

    def _unavailable(self) -> ToolError:
        """The connection is gone: have the watching task reconnect now, and tell Claude plainly."""
        self._lost.set()
        self._wake.set()
        return ToolError(f"MCP server {self.config.name!r} is not available")

    async def close(self) -> None:
        """Ask the task to leave its connection politely; cancel it if that takes longer than CLOSE_GRACE_S."""
        self._stop.set()
        self._wake.set()
        task = self._task
        if task is None or task.done():
            return
        done, _ = await asyncio.wait({task}, timeout=CLOSE_GRACE_S)
        if not done and self._scope is not None:
            self._scope.cancel()
            await asyncio.wait({task}, timeout=CLOSE_GRACE_S)


async def _list_tools(client: Client) -> list[McpTool]:
    """Every page of the server's tool list."""
    tools: list[McpTool] = []
    cursor: str | None = None
    for _ in range(MAX_TOOL_PAGES):
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if cursor is None:
            break
    return tools


def _result_text(result: CallToolResult) -> str:
    """The text Claude sees: text blocks joined, other content named, structured output when there is no text."""
    parts = [_block_text(block) for block in result.content]
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(parts)


def _block_text(block: ContentBlock) -> str:
    if isinstance(block, TextContent):
        return block.text
    if isinstance(block, ImageContent):
        return "[image]"
    if isinstance(block, AudioContent):
        return "[audio]"
    if isinstance(block, ResourceLink):
        return f"[resource: {block.uri}]"
    if isinstance(block, EmbeddedResource):
        if isinstance(block.resource, TextResourceContents):
            return block.resource.text
        return f"[resource: {block.resource.uri}]"
    return f"[{getattr(block, 'type', 'content')}]"  # a content type newer than this adapter


def _reason(error: BaseException) -> str:
    """One plain line for an error, looking inside the exception groups anyio raises."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def tool_name(server: str, tool: str, taken: set[str]) -> str:
    """`mcp__<server>__<tool>` made to fit Claude's name rule, and unique among `taken`."""
    name = re.sub(r"[^a-zA-Z0-9_-]", "_", f"mcp__{server}__{tool}")
    if len(name) > MAX_TOOL_NAME_CHARS:
        digest = hashlib.sha256(f"{server}\0{tool}".encode()).hexdigest()[:8]
        name = f"{name[: MAX_TOOL_NAME_CHARS - 9]}_{digest}"
    candidate, suffix = name, 2
    while candidate in taken:
        candidate = f"{name[: MAX_TOOL_NAME_CHARS - len(str(suffix)) - 1]}_{suffix}"
        suffix += 1
    return candidate


def _as_tool(connection: _Connection, listed: McpTool, name: str) -> Tool:
    server, remote = connection.config.name, listed.name

    async def run(arguments: dict[str, Any], ctx: ToolContext) -> str:
        return await connection.call(remote, arguments)

    schema = copy.deepcopy(listed.input_schema)
    schema.setdefault("type", "object")  # required by MCP and by Claude; a sloppy server may leave it out
    description = listed.description or listed.title or remote
    # readOnlyHint is the server's own claim (the MCP spec calls annotations untrusted unless the server is):
    # it skips approval only on a server the operator marked "trusted" in MCP_CONFIG.
    read_only = (
        connection.config.trusted and listed.annotations is not None and listed.annotations.read_only_hint is True
    )
    return Tool(
        name=name,
        description=f"[MCP server {server}] {description}",
        input_model=None,
        run=run,
        for_model=True,
        for_people=False,
        # Without a trusted server's word that a tool only reads, assume the tool changes things.
        acts=not read_only,
        timeout_s=connection.config.timeout_s,
        describe=lambda _: tr(texts.TOOL_MCP, tool=remote, server=server),
        raw_schema=schema,
        available=lambda: connection.connected,  # not offered while the server is away
        source="mcp",
        extra={"server": server, "tool": remote},
    )


class McpTools:
    """Owns the connections (one MCP client session per server) for the bot's lifetime."""

    def __init__(
        self,
        configs: list[McpServerConfig],
        *,
        health_check_s: float = HEALTH_CHECK_S,
        backoff_s: tuple[float, float] = RECONNECT_BACKOFF_S,
    ) -> None:
        self._configs = list(configs)
        self._health_check_s = health_check_s
        self._backoff_s = backoff_s
        self._connections: list[_Connection] = []
        self._tools: list[Tool] = []
        self._started = False

    async def start(self) -> list[str]:
        """Connect to every server at once; one that fails is skipped and reported as a plain line. Never raises."""
        if self._started:
            return []
        self._started = True
        problems: list[str] = []
        unique: list[McpServerConfig] = []
        for config in self._configs:
            if any(other.name == config.name for other in unique):
                problems.append(f"MCP server {config.name!r} is configured twice; only the first is used")
            else:
                unique.append(config)
        connections = [
            _Connection(config, health_check_s=self._health_check_s, backoff_s=self._backoff_s) for config in unique
        ]
        outcomes = await asyncio.gather(*(connection.open() for connection in connections), return_exceptions=True)
        for connection, outcome in zip(connections, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                problems.append(f"MCP server {connection.config.name!r} failed to start: {_reason(outcome)}")
                await connection.close()
                continue
            self._connections.append(connection)
            log.info("MCP server %r connected with %d tools", connection.config.name, len(connection.listed))

        taken: set[str] = set()
        for connection in self._connections:
            for listed in connection.listed:
                if listed.input_schema.get("type", "object") != "object":
                    # Claude rejects a request whose tool schema is not an object, which would break every reply.
                    server = connection.config.name
                    problems.append(f"MCP server {server!r}: tool {listed.name!r} skipped (its input is not an object)")
                    continue
                name = tool_name(connection.config.name, listed.name, taken)
                taken.add(name)
                self._tools.append(_as_tool(connection, listed, name))
        return problems

    def tools(self) -> list[Tool]:
        """The tools of every server that started, ready to register."""
        return list(self._tools)

    async def close(self) -> None:
        """Shut every connection down (stdio servers are stopped); later calls report the server unavailable."""
        connections, self._connections = self._connections, []
        await asyncio.gather(*(connection.close() for connection in connections))
