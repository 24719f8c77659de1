"""Hostile pages against the real fetcher: pathological HTML up to the 2 MB cap is read, or refused, within the
tool's time limit, and no parser keeps a CPU busy once the tool has answered."""

from __future__ import annotations

import re
import time
from typing import Any

import psutil
import pytest

from bot.core.tools.registry import ToolError
from tests.contract import test_web_fetch as base
from tests.contract.test_web_fetch import Serve, page

# The fetch tests' fixtures: local servers, fetchers closed after the test, and the no-traffic-off-loopback guard.
serve = base.serve
fetchers = base.fetchers
dialled = base.dialled

CAP = 2_000_000


def hostile(unit: str) -> bytes:
    return (unit * (CAP // len(unit) + 1))[:CAP].encode()


def parser_processes() -> list[psutil.Process]:
    """Live children of this test process that run the page parser."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.is_running() and child.status() != psutil.STATUS_ZOMBIE and "bot.web.readable" in child.cmdline():
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


async def test_two_megabytes_of_unclosed_tags_are_read_well_under_the_limit(serve: Serve, fetchers: Any) -> None:
    """`"<a" * N` is quadratic for html.parser (40 KB took 3 s); here the whole 2 MB takes a fraction of a second."""
    site = await serve({"/a": page(hostile("<a"), "text/html")})
    started = time.monotonic()
    title, text = await fetchers(timeout_s=10.0, max_bytes=CAP).fetch_text(f"{site.url}/a", max_chars=1000)
    assert time.monotonic() - started < 3.0
    assert (title, text) == ("", "")
    assert parser_processes() == []


@pytest.mark.slow
@pytest.mark.parametrize("unit", ["<p>x", "<b><i>", "<a href=x>"])
async def test_pathological_markup_answers_within_the_limit_and_leaves_no_parser_running(
    serve: Serve, fetchers: Any, unit: str
) -> None:
    """Deep nesting is quadratic even for Lexbor: the tool answers at its limit and the parser is killed then."""
    site = await serve({"/p": page(hostile(unit), "text/html")})
    limit = 2.0
    started = time.monotonic()
    try:
        await fetchers(timeout_s=limit, max_bytes=CAP).fetch_text(f"{site.url}/p", max_chars=1000)
    except ToolError as refused:
        assert "took longer than 2 s" in str(refused)
    assert time.monotonic() - started < limit + 1.0
    assert parser_processes() == []


@pytest.mark.slow
async def test_deep_nesting_is_refused_at_the_limit_and_its_parser_killed(serve: Serve, fetchers: Any) -> None:
    """`"<div>" * N` (2 MB) would take Lexbor minutes; the tool answers at its limit and the child is gone."""
    site = await serve({"/div": page(hostile("<div>"), "text/html")})
    started = time.monotonic()
    with pytest.raises(ToolError, match=re.escape("took longer than 1.5 s")):
        await fetchers(timeout_s=1.5, max_bytes=CAP).fetch_text(f"{site.url}/div", max_chars=1000)
    assert time.monotonic() - started < 2.5
    assert parser_processes() == []


async def test_a_parser_that_dies_is_a_clear_refusal(
    serve: Serve, fetchers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash of the parser process (here: it cannot even start Python's -m) is one line for Claude, not a 500."""
    monkeypatch.setattr("bot.web.readable.sys.executable", "/bin/false")
    site = await serve({"/x": page("<p>fine</p>", "text/html")})
    with pytest.raises(ToolError, match=re.escape("at 127.0.0.1: the page could not be parsed")):
        await fetchers().fetch_text(f"{site.url}/x", max_chars=1000)
