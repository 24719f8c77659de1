"""Images and PDFs shared with the bot: what reaches Claude, from where, and what the user is told."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from PIL import Image

from tests.e2e.conftest import BotFactory, RunningBot
from tests.e2e.helpers import settle, wait_for_reply
from tests.fakes.anthropic_api import FakeAnthropic, TextReply
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import app_mention, dm_message, event_callback, message

TINY_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)


def image_bytes(width: int, height: int, fmt: str = "PNG", color: str = "red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format=fmt)
    return buffer.getvalue()


def images_in(request_messages: list[dict]) -> list[dict]:
    return [
        block
        for message in request_messages
        if isinstance(message["content"], list)
        for block in message["content"]
        if block["type"] in ("image", "document")
    ]


async def test_a_screenshot_reaches_claude_intact_and_is_fetched_with_the_bot_token(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    png = image_bytes(200, 120)
    file = slack.add_file(png, name="screenshot.png", mimetype="image/png")
    root = "1700000500.000100"
    await running.sender.send_event(event_callback(app_mention("what do you think of this UI?", ts=root, files=[file])))
    await wait_for_reply(slack, "C0GENERAL", root, "OK")

    [image] = images_in(claude.requests[0].messages)
    assert image["source"]["media_type"] == "image/png"
    assert base64.b64decode(image["source"]["data"]) == png  # small enough: sent byte for byte
    assert claude.requests[0].last_user_text().endswith("]what do you think of this UI?")
    assert [d["authorization"] for d in slack.file_downloads] == ["Bearer xoxb-test-token"]


async def test_large_images_are_downscaled_and_several_per_message_are_sent(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    big = slack.add_file(image_bytes(4000, 2000, "JPEG"), name="design-a.jpg", mimetype="image/jpeg")
    small = slack.add_file(image_bytes(300, 300, "PNG", "blue"), name="design-b.png", mimetype="image/png")
    root = "1700000501.000100"
    await running.sender.send_event(event_callback(app_mention("compare these", ts=root, files=[big, small])))
    await wait_for_reply(slack, "C0GENERAL", root, "OK")

    first, second = images_in(claude.requests[0].messages)
    downscaled = Image.open(io.BytesIO(base64.b64decode(first["source"]["data"])))
    assert max(downscaled.size) <= 1568 and downscaled.size[0] == 2 * downscaled.size[1]  # aspect ratio kept
    assert len(first["source"]["data"]) <= 5 * 1024 * 1024
    assert second["source"]["media_type"] == "image/png"


async def test_a_file_shared_without_words_gets_a_critique(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    file = slack.add_file(image_bytes(64, 64), name="mock.png", mimetype="image/png")
    await running.sender.send_event(event_callback(dm_message("", ts="1700000502.000100", files=[file])))
    await wait_for_reply(slack, "D0DM", None, "OK")
    assert "critique" in claude.requests[0].last_user_text()
    assert len(images_in(claude.requests[0].messages)) == 1


async def test_a_follow_up_still_sees_the_image_without_downloading_it_again(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    png = image_bytes(100, 100)
    file = slack.add_file(png, name="chart.png", mimetype="image/png")
    root = "1700000503.000100"
    claude.script(TextReply("A red square."), TextReply("Still a red square."))
    await running.sender.send_event(event_callback(app_mention("what is this?", ts=root, files=[file])))
    await wait_for_reply(slack, "C0GENERAL", root, "A red square.")
    await running.sender.send_event(event_callback(message("what colour was the screenshot above?", thread_ts=root)))
    await wait_for_reply(slack, "C0GENERAL", root, "Still a red square.")

    [image] = images_in(claude.requests[1].messages)
    assert base64.b64decode(image["source"]["data"]) == png
    assert len(slack.file_downloads) == 1  # kept in Redis, not fetched again


async def test_pdfs_are_sent_as_documents(running: RunningBot, slack: FakeSlack, claude: FakeAnthropic) -> None:
    file = slack.add_file(TINY_PDF, name="spec.pdf", mimetype="application/pdf")
    root = "1700000504.000100"
    await running.sender.send_event(event_callback(app_mention("summarise", ts=root, files=[file])))
    await wait_for_reply(slack, "C0GENERAL", root, "OK")
    [document] = images_in(claude.requests[0].messages)
    assert document["type"] == "document" and document["source"]["media_type"] == "application/pdf"


async def test_unsupported_files_get_one_friendly_line_and_no_claude_call(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    file = slack.add_file(b"just,some,csv\n1,2,3\n", name="data.png", mimetype="image/png")  # lies about its type
    root = "1700000505.000100"
    await running.sender.send_event(event_callback(app_mention("", ts=root, files=[file])))
    [reply] = await wait_for_reply(slack, "C0GENERAL", root, "PNG, JPEG, GIF and WebP")
    assert "data.png" in reply.text
    await settle()
    assert claude.requests == []


async def test_oversize_files_are_refused_before_download_but_the_question_is_answered(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    running = await start_bot(max_file_bytes=10_000)
    file = slack.add_file(image_bytes(1500, 1500, "PNG"), name="huge.png", mimetype="image/png")
    root = "1700000506.000100"
    await running.sender.send_event(event_callback(app_mention("and also a question", ts=root, files=[file])))
    [reply] = await wait_for_reply(slack, "C0GENERAL", root, "OK")
    assert "huge.png" in reply.text  # told why the file was skipped
    assert slack.file_downloads == []
    assert images_in(claude.requests[0].messages) == []


@pytest.fixture
async def foreign_host() -> AsyncIterator[tuple[str, list[str]]]:
    """A server on another loopback address that must never be contacted."""
    hits: list[str] = []

    async def record(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(body=image_bytes(10, 10), content_type="image/png")

    app = web.Application()
    app.router.add_get("/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.2", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.2:{port}", hits
    await runner.cleanup()


async def test_a_file_url_on_a_foreign_host_is_never_fetched(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic, foreign_host: tuple[str, list[str]]
) -> None:
    base, hits = foreign_host
    file = slack.add_file(image_bytes(10, 10), name="trap.png", mimetype="image/png")
    file = file | {"url_private_download": f"{base}/steal", "url_private": f"{base}/steal"}
    root = "1700000507.000100"
    await running.sender.send_event(event_callback(app_mention("look", ts=root, files=[file])))
    [reply] = await wait_for_reply(slack, "C0GENERAL", root, "OK")
    assert "trap.png" in reply.text
    assert hits == []
    assert "xoxb-test-token" not in reply.text


async def test_only_the_newest_images_are_sent_and_the_user_is_told(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    running = await start_bot(max_images_per_thread=2)
    root = "1700000508.000100"
    colors = ["red", "green", "blue"]
    files = [slack.add_file(image_bytes(20, 20, "PNG", c), name=f"{c}.png", mimetype="image/png") for c in colors]
    await running.sender.send_event(event_callback(app_mention("first two", ts=root, files=files[:2])))
    await wait_for_reply(slack, "C0GENERAL", root, "OK")
    claude.script(TextReply("Third seen."))
    await running.sender.send_event(
        event_callback(message("and this one", ts="1700000508.000300", thread_ts=root, files=files[2:]))
    )
    messages = await wait_for_reply(slack, "C0GENERAL", root, "Third seen.")
    sent = images_in(claude.requests[1].messages)
    assert len(sent) == 2
    assert "red.png" in str(claude.requests[1].messages)  # the dropped one is named in a placeholder
    assert "left out" in messages[-1].text
