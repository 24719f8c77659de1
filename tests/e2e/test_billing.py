"""Every model call planned for the model that takes it, and billed as the API reported it: fallbacks get settings
they accept, and failed, cut-off or cancelled calls reach the ledger."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from tests.e2e.conftest import BotFactory, RunningBot
from tests.e2e.helpers import bot_messages, slash, wait_for_reply
from tests.e2e.test_usage import figures
from tests.fakes.anthropic_api import (
    DisconnectReply,
    FakeAnthropic,
    HttpErrorReply,
    MidStreamErrorReply,
    TextReply,
    TruncatedReply,
)
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import app_mention, event_callback

BILLED = {"input_tokens": 1200, "output_tokens": 300, "cache_creation_input_tokens": 400, "cache_read_input_tokens": 50}


def overloaded() -> HttpErrorReply:
    return HttpErrorReply(529, "overloaded_error", retry_after_ms="1")


async def ask(running: RunningBot, slack: FakeSlack, ts: str, expected: str) -> str:
    await running.sender.send_event(event_callback(app_mention("why is the build slow?", ts=ts)))
    [answer] = await wait_for_reply(slack, "C0GENERAL", ts, expected, timeout=20)
    return str(answer.text)


async def ledger_figures(running: RunningBot, slack: FakeSlack) -> dict[str, str]:
    """/claude-cost's figures for today, e.g. {"Requests": "2", "Input tokens": "1,200"}."""
    slack.add_user("U0ADMIN", name="boss", is_admin=True)
    return figures(await slash(running, slack, "/claude-cost", "today", user_id="U0ADMIN"))


def tally(claude: FakeAnthropic) -> dict[str, str]:
    """What the fake API reported, in the report's own figures."""
    reported = claude.reported_usage()
    return {
        "Requests": str(sum(1 for r in claude.requests if r.reported_usage is not None)),
        "Input tokens": f"{reported.get('input_tokens', 0):,}",
        "Output tokens": f"{reported.get('output_tokens', 0):,}",
        "Cache write tokens": f"{reported.get('cache_creation_input_tokens', 0):,}",
        "Cache read tokens": f"{reported.get('cache_read_input_tokens', 0):,}",
    }


async def test_an_overload_fallback_is_planned_for_itself_not_for_the_persona_model(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    # Sonnet 5.5 thinks adaptively and writes up to 128K tokens; Haiku 4.5 takes neither adaptive thinking nor
    # more than 64K output tokens (the fake's Models API says so, and refuses both with a 400 as the API does).
    running = await start_bot(
        claude_model="claude-sonnet-5-5",
        claude_fallback_model="claude-haiku-4-5",
        thinking="adaptive",
        claude_max_tokens=100_000,
    )
    claude.script(overloaded(), overloaded(), overloaded(), TextReply("From the fallback."))
    assert await ask(running, slack, "1700031000.000100", "From the fallback.") == "From the fallback."
    first, fallback = claude.requests[0], claude.requests[-1]
    assert first.body["model"] == "claude-sonnet-5-5" and first.body["thinking"] == {"type": "adaptive"}
    assert first.body["max_tokens"] == 100_000
    assert fallback.body["model"] == "claude-haiku-4-5" and fallback.status == 200
    assert "thinking" not in fallback.body  # no triage ran for it: no budget to give, so no thinking
    assert fallback.body["max_tokens"] == 64_000


async def test_a_budget_fallback_is_planned_for_itself(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    # Sonnet 4.6's worst case (1,000 output tokens at $15/MTok and the prompt) passes 90 % of $0.015; Haiku's fits.
    running = await start_bot(
        claude_model="claude-sonnet-4-6",
        claude_max_tokens=1000,
        thinking="adaptive",
        budget_month_usd=0.015,
        budget_fallback_model="claude-haiku-4-5",
    )
    assert await ask(running, slack, "1700031001.000100", "OK") == "OK"
    [request] = claude.requests  # no triage: the persona's model thinks adaptively
    assert request.body["model"] == "claude-haiku-4-5" and request.status == 200
    assert request.body.get("thinking", {}).get("type") != "adaptive"


async def test_an_effort_the_fallback_lacks_is_left_out(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    haiku = next(m for m in claude.models if m["id"] == "claude-haiku-5-5")
    haiku["capabilities"] = {**haiku["capabilities"], "effort": {"supported": False}}
    running = await start_bot(claude_model="claude-opus-5-5", claude_fallback_model="claude-haiku-5-5")
    await slash(running, slack, "/claude-persona", "sql_expert")  # its file asks for effort: high
    claude.script(overloaded(), overloaded(), overloaded(), TextReply("Effortless."))
    await ask(running, slack, "1700031002.000100", "Effortless.")
    assert claude.requests[0].body["output_config"] == {"effort": "high"}
    assert "output_config" not in claude.requests[-1].body and claude.requests[-1].status == 200


async def test_failed_and_cut_off_attempts_are_billed_as_the_api_reported_them(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    running = await start_bot(claude_model="claude-sonnet-5-5")
    claude.script(
        MidStreamErrorReply("The answer beg"),  # an error event after message_start
        TruncatedReply("The answer be"),  # the stream ends without message_stop
        DisconnectReply("The ans"),  # the connection drops mid-stream
        TextReply("The answer, complete.", usage=BILLED),
    )
    start = "1700031003.000100"
    await running.sender.send_event(event_callback(app_mention("hi", ts=start)))
    await wait_for_reply(slack, "C0GENERAL", start, "kept dropping", timeout=20)  # three attempts, all failed
    await ask(running, slack, "1700031003.000200", "The answer, complete.")
    assert len(claude.requests) == 4
    shown = await ledger_figures(running, slack)
    assert {name: shown[name] for name in tally(claude)} == tally(claude)
    assert shown["Requests"] == "4"


async def test_an_answer_cancelled_by_a_shutdown_is_billed_as_far_as_it_got(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    running = await start_bot()
    never = asyncio.Event()
    claude.script(
        TextReply("Halfway there, and never more.", chunks=["Halfway there", ", and never more."], gate=never)
    )
    ts = "1700031004.000100"
    await running.sender.send_event(event_callback(app_mention("go", ts=ts)))
    async with asyncio.timeout(10):
        while True:  # the answer is streaming: its first words are shown
            if any("Halfway there" in m.text for m in bot_messages(slack, "C0GENERAL", ts)):
                break
            await asyncio.sleep(0.02)
    in_progress = running.bot.slack_deps.in_progress
    in_progress.stop_accepting()
    assert await in_progress.finish(0.1) == 1  # the shutdown's path: the answer is cancelled mid-stream
    today = datetime.now(UTC).date()
    report = await running.bot.core.usage.report("T0001", today, today)
    [request] = claude.requests
    assert request.reported_usage is not None
    assert report.requests == 1 and report.input_tokens == request.reported_usage["input_tokens"]
    assert report.output_tokens > request.reported_usage["output_tokens"]  # plus what it wrote, estimated


def pdf_of(pages: int) -> bytes:
    """A PDF whose page tree holds `pages` empty pages."""
    kids = " ".join(f"{3 + n} 0 R" for n in range(pages))
    objects = [
        b"1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj",
        f"2 0 obj<</Type/Pages/Kids[{kids}]/Count {pages}>>endobj".encode(),
    ]
    objects += [f"{3 + n} 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj".encode() for n in range(pages)]
    return b"%PDF-1.4\n" + b"\n".join(objects) + b"\ntrailer<</Root 1 0 R>>\n%%EOF\n"


async def test_a_long_pdf_is_reserved_by_its_pages_not_as_one_image(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    # 90 pages, each read as text and as an image (~4,600 tokens): ~414K tokens, at long-context rates ~$3 on Sonnet
    # 4.6. A $1 budget admits a question, but not that PDF: it could overshoot by three times the budget.
    running = await start_bot(claude_model="claude-sonnet-4-6", claude_max_tokens=1000, budget_month_usd=1.0)
    assert await ask(running, slack, "1700031005.000100", "OK") == "OK"
    file = slack.add_file(pdf_of(90), name="manual.pdf", mimetype="application/pdf")
    root = "1700031005.000200"
    await running.sender.send_event(event_callback(app_mention("summarise", ts=root, files=[file])))
    await wait_for_reply(slack, "C0GENERAL", root, "is spent")
    assert len(claude.requests) == 1


async def test_a_retry_is_admitted_like_any_call(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    # The failed attempt read 15,000 tokens ($0.045 on Sonnet 4.6): another worst case (~$0.02) would pass $0.05.
    running = await start_bot(claude_model="claude-sonnet-4-6", claude_max_tokens=1000, budget_month_usd=0.05)
    claude.script(MidStreamErrorReply("The answer beg", usage={"input_tokens": 15_000}), TextReply("Never sent."))
    root = "1700031006.000100"
    await running.sender.send_event(event_callback(app_mention("hi", ts=root)))
    await wait_for_reply(slack, "C0GENERAL", root, "is spent", timeout=20)
    assert len(claude.requests) == 1  # no second attempt past the budget
    shown = await ledger_figures(running, slack)
    assert shown["Requests"] == "1" and shown["Input tokens"] == "15,000"
