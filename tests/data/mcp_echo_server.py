"""A tiny MCP server for the MCP adapter's contract tests; run as a script it serves stdio, tests also mount it on HTTP.

With MCP_ECHO_DOWN_FILE set, the server refuses to start while that file exists (a test's staged outage).

Tools: `echo` (declared read-only), `add` (no annotations), `fail` (always raises) and `delete_everything`
(declared destructive), so the tests can check how annotations decide whether a tool needs approval.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations


def build_server() -> MCPServer:
    """A fresh server, so each test (and each process) gets its own state."""
    # WARNING: MCPServer configures logging when built, and tests read stderr for nothing else.
    server: MCPServer = MCPServer("echo", log_level="WARNING")

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @server.tool()
    def fail() -> str:
        """Always fail, the way a tool reports a failure it saw coming (the message reaches the client)."""
        raise ToolError("this tool always fails")

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True))
    def delete_everything() -> str:
        """Pretend to delete everything (it only says so)."""
        return "deleted"

    return server


if __name__ == "__main__":
    # A test stages an outage by creating this file: while it exists the server fails to start.
    down = os.environ.get("MCP_ECHO_DOWN_FILE")
    if down and Path(down).exists():
        sys.exit("echo server: staged outage")
    build_server().run()
