"""The MCP_CONFIG file: which MCP servers to connect to (the common `{"mcpServers": {...}}` format)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Server names become part of tool names (`mcp__<server>__<tool>`), so they stay short and plain.
SERVER_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,32}$")


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
