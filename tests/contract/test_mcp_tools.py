"""MCP adapter contract: real MCP servers (stdio subprocess and streamable HTTP on loopback) become registry tools."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot.core.tools.registry import Tool, ToolContext, ToolError, ToolRegistry
from bot.mcp_tools import McpServerConfig, McpTools, load_mcp_config, tool_name

ECHO_SERVER = Path(__file__).resolve().parents[1] / "data" / "mcp_echo_server.py"
# Generous: a stdio server is a fresh Python process importing the MCP SDK (about 2 s here, more on a busy CI box).
START_TIMEOUT_S = 20.0
CTX = ToolContext(workspace_id="T1", channel_id="C1", thread_id="1.0", user_id="U1")

# The stdio server takes ~2 s to start, so the tests that only read from it share one (and one event loop).
shared_loop = pytest.mark.asyncio(loop_scope="module")


def echo_stdio(name: str = "echo", *, trusted: bool = False) -> McpServerConfig:
    return McpServerConfig(
        name=name, command=sys.executable, args=[str(ECHO_SERVER)], timeout_s=START_TIMEOUT_S, trusted=trusted
    )


@dataclass
class Started:
    mcp: McpTools
    problems: list[str]

    def tool(self, remote: str, server: str = "echo") -> Tool:
        return next(t for t in self.mcp.tools() if t.extra == {"server": server, "tool": remote})


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def started() -> AsyncIterator[Started]:
    """The echo server, plus one whose command does not exist and one that never answers (started alongside)."""
    mcp = McpTools(
        [
            echo_stdio(),
            echo_stdio("vouched", trusted=True),
            McpServerConfig(name="missing", command="/nonexistent/mcp-server"),
            # Reads stdin until it closes, never answering: start-up must time out and stop it.
            McpServerConfig(
                name="silent", command=sys.executable, args=["-c", "import sys; sys.stdin.read()"], timeout_s=1
            ),
        ]
    )
    problems = await mcp.start()
    try:
        yield Started(mcp, problems)
    finally:
        await mcp.close()


@shared_loop
async def test_tools_are_namespaced_with_schema_and_marked_when_they_act(started: Started) -> None:
    tools = {t.name: t for t in started.mcp.tools()}

    assert {n for n in tools if n.startswith("mcp__echo__")} == {
        "mcp__echo__echo",
        "mcp__echo__add",
        "mcp__echo__fail",
        "mcp__echo__delete_everything",
    }
    echo = tools["mcp__echo__echo"]
    assert echo.description == "[MCP server echo] Return the text unchanged."
    assert echo.input_model is None
    assert echo.input_schema()["properties"]["text"]["type"] == "string"
    assert echo.input_schema()["required"] == ["text"]
    assert (echo.for_model, echo.for_people, echo.source) == (True, False, "mcp")
    assert echo.status({"text": "hi"}) == "Using echo on echo…"
    # A server's own readOnlyHint is only its claim: on a server the operator did not mark trusted, every tool
    # needs approval. On a trusted one, only a declared read-only tool runs without it.
    assert {name: t.acts for name, t in tools.items() if name.startswith("mcp__echo__")} == {
        "mcp__echo__echo": True,
        "mcp__echo__add": True,
        "mcp__echo__fail": True,
        "mcp__echo__delete_everything": True,
    }
    assert {name: t.acts for name, t in tools.items() if name.startswith("mcp__vouched__")} == {
        "mcp__vouched__echo": False,
        "mcp__vouched__add": True,
        "mcp__vouched__fail": True,
        "mcp__vouched__delete_everything": True,
    }
    ToolRegistry(started.mcp.tools())  # registers without name clashes


@shared_loop
async def test_calls_return_the_tools_text(started: Started) -> None:
    assert await started.tool("echo").run({"text": "hello ☃"}, CTX) == "hello ☃"
    assert await started.tool("add").run({"a": 2, "b": 40}, CTX) == "42"
    assert await started.tool("delete_everything").run({}, CTX) == "deleted"


@shared_loop
async def test_a_failing_tool_is_a_tool_error_with_its_message(started: Started) -> None:
    with pytest.raises(ToolError, match="this tool always fails"):
        await started.tool("fail").run({}, CTX)
    with pytest.raises(ToolError, match="valid integer"):
        await started.tool("add").run({"a": "two", "b": 1}, CTX)


@shared_loop
async def test_concurrent_calls_each_get_their_own_answer(started: Started) -> None:
    echo, add = started.tool("echo"), started.tool("add")

    results = await asyncio.gather(
        *(echo.run({"text": f"message {i}"}, CTX) for i in range(20)),
        *(add.run({"a": i, "b": 1000}, CTX) for i in range(20)),
    )

    assert results == [f"message {i}" for i in range(20)] + [str(i + 1000) for i in range(20)]


@shared_loop
async def test_servers_that_fail_to_start_are_reported_and_skipped(started: Started) -> None:
    assert len(started.problems) == 2
    missing, silent = sorted(started.problems)
    assert missing.startswith("MCP server 'missing' failed to start: ")
    assert "No such file" in missing
    assert silent == "MCP server 'silent' failed to start: timed out after 1 s"
    assert {t.extra["server"] for t in started.mcp.tools()} == {"echo", "vouched"}


async def test_no_servers_means_no_tools() -> None:
    mcp = McpTools([])
    assert await mcp.start() == []
    assert mcp.tools() == []
    await mcp.close()


# --- streamable HTTP -------------------------------------------------------------------------------------------------

ASGIApp = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


@dataclass
class RecordingApp:
    """The MCP server's ASGI app, noting the headers of every HTTP request it receives."""

    app: ASGIApp
    headers: list[dict[str, str]] = field(default_factory=list)

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.headers.append({k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]})
        await self.app(scope, receive, send)


@asynccontextmanager
async def http_echo_server() -> AsyncIterator[tuple[str, RecordingApp]]:
    """The echo server's tools over streamable HTTP on 127.0.0.1, on a port the OS picks."""
    uvicorn = pytest.importorskip("uvicorn", reason="the mcp package serves streamable HTTP through uvicorn")
    from tests.data.mcp_echo_server import build_server

    app = RecordingApp(build_server().streamable_http_app())
    # Bound and listening before uvicorn runs, so the client may connect at once (the kernel queues it).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    # timeout_graceful_shutdown: the client may still hold its event stream open when the test stops the server.
    config = uvicorn.Config(app, log_level="warning", ws="none", lifespan="on", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield f"http://127.0.0.1:{port}/mcp", app
    finally:
        server.should_exit = True
        await serving
        sock.close()


async def test_streamable_http_server_by_url_with_headers() -> None:
    async with http_echo_server() as (url, app):
        mcp = McpTools([McpServerConfig(name="remote", url=url, headers={"Authorization": "Bearer s3cret"})])
        try:
            assert await mcp.start() == []
            tools = {t.extra["tool"]: t for t in mcp.tools()}
            assert set(tools) == {"echo", "add", "fail", "delete_everything"}
            assert tools["echo"].name == "mcp__remote__echo"
            assert tools["echo"].description.startswith("[MCP server remote] ")

            assert await tools["echo"].run({"text": "over http"}, CTX) == "over http"
            assert await tools["add"].run({"a": 1, "b": 2}, CTX) == "3"
            with pytest.raises(ToolError, match="this tool always fails"):
                await tools["fail"].run({}, CTX)
        finally:
            await mcp.close()
        await mcp.close()  # closing twice is harmless

        with pytest.raises(ToolError, match=r"^MCP server 'remote' is not available$"):
            await tools["echo"].run({"text": "after close"}, CTX)

    assert app.headers and all(h.get("authorization") == "Bearer s3cret" for h in app.headers)


async def test_an_http_server_that_goes_away_is_not_available() -> None:
    async with http_echo_server() as (url, _):
        mcp = McpTools([McpServerConfig(name="remote", url=url, timeout_s=5)])
        assert await mcp.start() == []
    try:
        echo = next(t for t in mcp.tools() if t.extra["tool"] == "echo")
        with pytest.raises(ToolError, match=r"^MCP server 'remote' is not available$"):
            await echo.run({"text": "anyone there?"}, CTX)
    finally:
        await mcp.close()


def _kill_server_with(down_file: Path) -> None:
    """Kill the stdio server process started with this MCP_ECHO_DOWN_FILE (a child of this test process)."""
    psutil = pytest.importorskip("psutil")
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if child.environ().get("MCP_ECHO_DOWN_FILE") == str(down_file):
                child.kill()
                return
    raise AssertionError("no echo server process found")


async def _until(check: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.05)


async def test_a_server_that_dies_is_not_offered_until_it_is_reconnected(tmp_path: Path) -> None:
    down = tmp_path / "down"
    config = McpServerConfig(
        name="flaky",
        command=sys.executable,
        args=[str(ECHO_SERVER)],
        env={"MCP_ECHO_DOWN_FILE": str(down)},
        timeout_s=START_TIMEOUT_S,
    )
    mcp = McpTools([config], health_check_s=0.2, backoff_s=(0.2, 0.5))
    try:
        assert await mcp.start() == []
        registry = ToolRegistry(mcp.tools())
        echo = registry.get("mcp__flaky__echo")
        assert echo is not None and await echo.run({"text": "hello"}, CTX) == "hello"

        def offered() -> set[str]:
            return {t.name for t in registry.for_model()}

        down.touch()  # the server dies, and cannot start again for now
        _kill_server_with(down)
        await _until(lambda: "mcp__flaky__echo" not in offered(), "its tools are withdrawn")
        with pytest.raises(ToolError, match=r"^MCP server 'flaky' is not available$"):
            await echo.run({"text": "anyone?"}, CTX)

        down.unlink()  # the server can start again: it is reconnected, and its tools are back
        await _until(lambda: "mcp__flaky__echo" in offered(), "its tools are back")
        assert await echo.run({"text": "back again"}, CTX) == "back again"
    finally:
        await mcp.close()


async def test_an_unreachable_url_is_reported() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago, with nobody listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mcp = McpTools([McpServerConfig(name="gone", url=f"http://127.0.0.1:{port}/mcp", timeout_s=5)])

    (problem,) = await mcp.start()

    assert problem.startswith("MCP server 'gone' failed to start: ")
    assert mcp.tools() == []
    await mcp.close()


# --- configuration ---------------------------------------------------------------------------------------------------


def test_config_file_servers_and_problems(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    servers = {
        "files": {
            "command": "npx",
            "args": ["-y", "@modelcontextprotocol/server-filesystem", "/srv"],
            "env": {"K": "v"},
        },
        "remote": {"type": "http", "url": "https://example.com/mcp", "headers": {"Authorization": "Bearer t0ken"}},
        "slow": {"command": "slow-server", "timeout_s": 90, "trusted": True},
        "badtrust": {"command": "x", "trusted": "yes"},
        "off": {"command": "whatever", "disabled": True},
        "neither": {"args": ["x"]},
        "both": {"command": "x", "url": "https://example.com/mcp"},
        "bad name!": {"command": "x"},
        "badargs": {"command": "x", "args": "--flag"},
        "badenv": {"command": "x", "env": {"SECRET": 123}},
        "old": {"type": "sse", "url": "https://example.com/sse"},
        "ftp": {"url": "ftp://example.com/mcp"},
        "notobject": ["x"],
    }
    path.write_text(json.dumps({"mcpServers": servers}))

    configs, problems = load_mcp_config(path)

    assert configs == [
        McpServerConfig(
            name="files", command="npx", args=["-y", "@modelcontextprotocol/server-filesystem", "/srv"], env={"K": "v"}
        ),
        McpServerConfig(name="remote", url="https://example.com/mcp", headers={"Authorization": "Bearer t0ken"}),
        McpServerConfig(name="slow", command="slow-server", timeout_s=90.0, trusted=True),
    ]
    named = [p.split("'")[1] for p in problems]
    assert named == ["badtrust", "neither", "both", "bad name!", "badargs", "badenv", "old", "ftp", "notobject"]
    assert all(
        p.startswith(f"MCP server '{n}' skipped: ") and "\n" not in p for n, p in zip(named, problems, strict=True)
    )
    # Secrets stay out of problem lines and reprs.
    assert "123" not in " ".join(problems)
    assert "t0ken" not in repr(configs)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "does not exist"),
        ("{not json", "is not valid JSON"),
        ('{"servers": {}}', "needs an object"),
        ('{"mcpServers": []}', "needs an object"),
    ],
)
def test_unreadable_config_files_are_one_problem(tmp_path: Path, content: str | None, expected: str) -> None:
    path = tmp_path / "mcp.json"
    if content is not None:
        path.write_text(content)

    configs, problems = load_mcp_config(path)

    assert configs == []
    assert len(problems) == 1
    assert expected in problems[0]
    assert str(path) in problems[0]


def test_tool_names_fit_claudes_rule_and_stay_unique() -> None:
    taken: set[str] = set()
    plain = tool_name("github", "create_issue", taken)
    dotted = tool_name("my-server", "files.read/all", taken)
    long_a = tool_name("s", "x" * 80 + "a", taken)
    long_b = tool_name("s", "x" * 80 + "b", taken)
    taken |= {plain, dotted, long_a, long_b}
    clash = tool_name("my-server", "files_read_all", taken)

    assert plain == "mcp__github__create_issue"
    assert dotted == "mcp__my-server__files_read_all"
    assert clash == "mcp__my-server__files_read_all_2"
    assert len({plain, dotted, long_a, long_b, clash}) == 5
    for name in (plain, dotted, long_a, long_b, clash):
        assert 1 <= len(name) <= 64 and all(c.isalnum() or c in "_-" for c in name)
