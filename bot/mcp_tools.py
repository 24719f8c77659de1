"""MCP servers as registry tools: connect to each configured server, list its tools, and call them for Claude.

Each server's connection lives in one task of its own for the bot's lifetime: anyio (under the MCP SDK) requires
a connection's task groups and cancel scopes to be opened and closed by the same task, and `start`/`close` are
called from different tasks. Tool calls only send requests through that connection, so they may run concurrently.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import logging
import math
import re
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
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

log = logging.getLogger(__name__)

# Claude's rule for tool names (the Messages API rejects the whole request otherwise).
TOOL_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MAX_TOOL_NAME_CHARS = 64
# Server names become part of tool names (`mcp__<server>__<tool>`), so they stay short and plain.
SERVER_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,32}$")
# A server that lists tools forever must not hang start-up.
MAX_TOOL_PAGES = 100
# How long `close` lets a server shut down politely (stdio: close stdin, then SIGTERM; HTTP: DELETE the session).
CLOSE_GRACE_S = 10.0
# Matches the SDK's own default HTTP client: long reads, because a server may hold a response stream open.
HTTP_READ_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class McpServerConfig:
    """One MCP server: a command to run (stdio) or a streamable-HTTP URL; `timeout_s` bounds start-up and each call."""

    name: str
    command: str | None = None
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict, repr=False)  # often holds API keys: never logged
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict, repr=False)  # often holds a bearer token
    timeout_s: float = 30.0
    # The operator vouches for this server: its own readOnlyHint may then skip the asker's approval.
    trusted: bool = False


def load_mcp_config(path: Path) -> tuple[list[McpServerConfig], list[str]]:
    """Read the common `{"mcpServers": {...}}` file; a bad entry is one plain problem line, never a failed start."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return [], [f"MCP config {path} does not exist"]
    except OSError as error:
        return [], [f"MCP config {path} could not be read: {error.strerror or error}"]
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        return [], [f"MCP config {path} is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})"]
    if not isinstance(document, dict) or not isinstance(document.get("mcpServers"), dict):
        return [], [f'MCP config {path} needs an object {{"mcpServers": {{"<name>": {{...}}}}}}']

    configs: list[McpServerConfig] = []
    problems: list[str] = []
    for name, entry in document["mcpServers"].items():
        try:
            config = _parse_server(name, entry)
        except ValueError as error:
            problems.append(f"MCP server {name!r} skipped: {error}")
            continue
        if config is not None:
            configs.append(config)
    return configs, problems


def _parse_server(name: str, entry: object) -> McpServerConfig | None:
    """One `mcpServers` entry; None when it is switched off with `"disabled": true`."""
    if not SERVER_NAME_RE.fullmatch(name):
        raise ValueError("the name must be 1-32 letters, digits, '_' or '-'")
    if not isinstance(entry, dict):
        raise ValueError("the entry must be an object with a command or a url")
    if entry.get("disabled") is True:
        return None
    transport = entry.get("type")
    if transport == "sse":
        raise ValueError("the SSE transport is not supported; use the server's streamable HTTP endpoint")
    if transport not in (None, "stdio", "http", "streamable-http", "streamable_http"):
        raise ValueError(f"unknown type {transport!r} (expected 'stdio' or 'http')")
    command, url = entry.get("command"), entry.get("url")
    if command is not None and url is not None:
        raise ValueError("give either a command or a url, not both")
    if command is None and url is None:
        raise ValueError("give a command (stdio) or a url (streamable HTTP)")
    timeout_s = entry.get("timeout_s", 30.0)
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or not 0 < timeout_s < math.inf:
        raise ValueError("timeout_s must be a positive number of seconds")
    trusted = entry.get("trusted", False)
    if not isinstance(trusted, bool):
        raise ValueError("trusted must be true or false")
    if command is not None:
        if not isinstance(command, str) or not command.strip():
            raise ValueError("command must be a non-empty string")
        args = entry.get("args", [])
        if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
            raise ValueError("args must be a list of strings")
        return McpServerConfig(
            name=name,
            command=command,
            args=args,
            env=_strings(entry, "env"),
            timeout_s=float(timeout_s),
            trusted=trusted,
        )
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise ValueError("url must be an http:// or https:// address")
    return McpServerConfig(
        name=name, url=url, headers=_strings(entry, "headers"), timeout_s=float(timeout_s), trusted=trusted
    )


def _strings(entry: dict[str, Any], key: str) -> dict[str, str]:
    """A string-to-string mapping (env, headers); the message never repeats the values, which may be secrets."""
    value = entry.get(key, {})
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValueError(f"{key} must map names to string values")
    return dict(value)


class _Connection:
    """One server's MCP client, opened and closed inside a task of its own (see the module docstring)."""

    def __init__(self, config: McpServerConfig) -> None:
        self.config = config
        self.listed: list[McpTool] = []
        self._client: Client | None = None
        self._stop = asyncio.Event()
        self._scope: anyio.CancelScope | None = None
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Connect and list the tools within `timeout_s`; raises whatever stopped it."""
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._own(ready), name=f"mcp-server:{self.config.name}")
        await ready

    async def _own(self, ready: asyncio.Future[None]) -> None:
        timed_out = False
        try:
            # The deadline covers connecting and listing only; it is lifted once the server is ready.
            with anyio.CancelScope(deadline=anyio.current_time() + self.config.timeout_s) as scope:
                self._scope = scope
                async with AsyncExitStack() as stack:
                    client = Client(self._transport(stack))
                    await stack.enter_async_context(client)
                    self.listed = await _list_tools(client)
                    scope.deadline = math.inf
                    self._client = client
                    ready.set_result(None)
                    await self._stop.wait()
            timed_out = scope.cancelled_caught and not self._stop.is_set()
        except Exception as error:
            if not ready.done():
                ready.set_exception(error)
            else:
                log.warning("MCP server %r disconnected: %s", self.config.name, _reason(error))
        finally:
            self._client = None
            if not ready.done():
                reason = f"timed out after {self.config.timeout_s:g} s" if timed_out else "stopped while starting"
                ready.set_exception(TimeoutError(reason))

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
                raise ToolError(f"MCP server {self.config.name!r} is not available") from None
            raise ToolError(f"MCP server {self.config.name!r} refused {tool}: {error.message}") from None
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream, OSError, httpx2.HTTPError):
            raise ToolError(f"MCP server {self.config.name!r} is not available") from None
        except Exception as error:  # e.g. structured output that breaks the tool's own schema
            log.warning("MCP tool %s on %r failed", tool, self.config.name, exc_info=True)
            raise ToolError(f"MCP server {self.config.name!r} failed to run {tool}: {_reason(error)}") from None
        text = _result_text(result)
        if result.is_error:
            raise ToolError(text or f"{tool} failed on MCP server {self.config.name!r}")
        return text

    async def close(self) -> None:
        """Ask the task to leave its connection politely; cancel it if that takes longer than CLOSE_GRACE_S."""
        self._stop.set()
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
        source="mcp",
        extra={"server": server, "tool": remote},
    )


class McpTools:
    """Owns the connections (one MCP client session per server) for the bot's lifetime."""

    def __init__(self, configs: list[McpServerConfig]) -> None:
        self._configs = list(configs)
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
        connections = [_Connection(config) for config in unique]
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
