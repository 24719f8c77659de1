"""Log lines: one JSON object per line (or readable text) with the request's context, and never a secret."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from bot import logs


@pytest.fixture
def output() -> Iterator[tuple[io.StringIO, logging.Logger]]:
    """A logger writing through a handler set up as `logs.configure` sets one up, into a buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.addFilter(logs.RedactSecrets())
    logger = logging.getLogger("test.logs")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logs.start_request()
    yield buffer, logger
    logger.handlers.clear()
    logs.start_request()


def json_lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_a_json_line_carries_the_request_context_and_extras(output: tuple[io.StringIO, logging.Logger]) -> None:
    buffer, logger = output
    logger.handlers[0].setFormatter(logs.JsonFormatter())
    logs.start_request(workspace="T1", channel="C1", thread="1700000000.000100", event_id="Ev1", kind="app_mention")
    logs.bind(anthropic_request_id="req_1")
    logger.info("answer finished: %s", "ok", extra={"duration_ms": 1200})
    [line] = json_lines(buffer)
    assert line["message"] == "answer finished: ok"
    assert line["level"] == "INFO" and line["logger"] == "test.logs" and str(line["ts"]).endswith("+00:00")
    assert line["workspace"] == "T1" and line["channel"] == "C1" and line["event_id"] == "Ev1"
    assert line["anthropic_request_id"] == "req_1" and line["duration_ms"] == 1200


def test_a_new_request_starts_with_a_clean_context(output: tuple[io.StringIO, logging.Logger]) -> None:
    buffer, logger = output
    logger.handlers[0].setFormatter(logs.JsonFormatter())
    logs.start_request(workspace="T1", channel="C1", event_id="Ev1")
    logs.start_request(workspace="T2", channel=None)
    logger.info("next")
    [line] = json_lines(buffer)
    assert line["workspace"] == "T2" and "channel" not in line and "event_id" not in line


async def test_tasks_started_while_handling_a_request_keep_its_context(
    output: tuple[io.StringIO, logging.Logger],
) -> None:
    buffer, logger = output
    logger.handlers[0].setFormatter(logs.JsonFormatter())

    async def request(event_id: str) -> None:
        logs.start_request(event_id=event_id)
        await asyncio.create_task(asyncio.sleep(0, result=None))
        await asyncio.create_task(_log_later(logger))

    await asyncio.gather(asyncio.create_task(request("Ev1")), asyncio.create_task(request("Ev2")))
    assert sorted(str(line["event_id"]) for line in json_lines(buffer)) == ["Ev1", "Ev2"]


async def _log_later(logger: logging.Logger) -> None:
    await asyncio.sleep(0)
    logger.info("from a task the listener started")


@pytest.mark.parametrize("formatter", [logs.JsonFormatter(), logs.TextFormatter()], ids=["json", "text"])
def test_tokens_and_passwords_are_redacted_even_in_tracebacks(
    output: tuple[io.StringIO, logging.Logger], formatter: logging.Formatter
) -> None:
    buffer, logger = output
    logger.handlers[0].setFormatter(formatter)
    logger.warning("token %s and %s", "xoxb-123-secret", "rediss://:hunter2@cache.internal:6380/0")
    try:
        raise ValueError("connecting with sk-ant-api03-SECRET to redis://admin:hunter2@10.0.0.5:6379")
    except ValueError:
        logger.exception("failed")
    text = buffer.getvalue()
    assert "hunter2" not in text and "xoxb-123" not in text and "sk-ant" not in text
    assert "cache.internal:6380" in text and "10.0.0.5:6379" in text  # where it went stays readable


def test_text_lines_show_the_context_after_the_message(output: tuple[io.StringIO, logging.Logger]) -> None:
    buffer, logger = output
    logger.handlers[0].setFormatter(logs.TextFormatter())
    logs.start_request(workspace="T1", event_id="Ev1")
    logger.info("hello")
    assert buffer.getvalue().rstrip().endswith("test.logs: hello [workspace=T1 event_id=Ev1]")


def test_message_text_is_logged_only_when_asked() -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    content = logging.getLogger(logs.CONTENT_LOGGER)
    try:
        logs.configure("INFO", fmt="json")
        assert not content.isEnabledFor(logging.DEBUG)
        logs.configure("DEBUG", fmt="json")
        assert not content.isEnabledFor(logging.DEBUG)
        logs.configure("INFO", fmt="json", message_text=True)
        assert content.isEnabledFor(logging.DEBUG)
        assert isinstance(root.handlers[0].formatter, logs.JsonFormatter)
        logs.configure("INFO", fmt="text")
        assert isinstance(root.handlers[0].formatter, logs.TextFormatter)
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        content.setLevel(logging.NOTSET)
