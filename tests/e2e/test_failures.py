"""When Claude or Redis misbehave: retried, explained in plain words, nothing lost, the bot keeps serving."""

from __future__ import annotations

from tests.e2e.conftest import BotFactory, RunningBot
from tests.e2e.helpers import bot_messages, eventually, wait_for_reply
from tests.fakes.anthropic_api import (
    DisconnectReply,
    FakeAnthropic,
    HttpErrorReply,
    MidStreamErrorReply,
    StallReply,
    TextReply,
    TruncatedReply,
)
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import app_mention, event_callback, message


def overloaded() -> HttpErrorReply:
    return HttpErrorReply(529, "overloaded_error", retry_after_ms="1")


async def test_overload_that_clears_up_is_invisible_to_the_user(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    claude.script(overloaded(), overloaded(), TextReply("Made it."))
    await running.sender.send_event(event_callback(app_mention("hi", ts="1700000200.000100")))
    [answer] = await wait_for_reply(slack, "C0GENERAL", "1700000200.000100", "Made it.")
    assert answer.text == "Made it."


async def test_persistent_overload_ends_in_a_plain_note_and_the_bot_keeps_serving(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    claude.script(overloaded(), overloaded(), overloaded(), TextReply("Back again."))
    root = "1700000201.000100"
    await running.sender.send_event(event_callback(app_mention("first question", ts=root)))
    [notice] = await wait_for_reply(slack, "C0GENERAL", root, "overloaded")
    assert "Claude is overloaded right now." in notice.text
    assert "req_" in notice.text  # the request id, for whoever investigates

    await running.sender.send_event(event_callback(message("second question", thread_ts=root)))
    await wait_for_reply(slack, "C0GENERAL", root, "Back again.")
    # The failed question stayed in the history.
    assert "first question" in str(claude.requests[-1].messages)


async def test_overload_switches_to_the_fallback_model(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    running = await start_bot(claude_model="claude-opus-5-5", claude_fallback_model="claude-haiku-5-5")
    claude.script(overloaded(), overloaded(), overloaded(), TextReply("From the fallback."))
    await running.sender.send_event(event_callback(app_mention("hi", ts="1700000202.000100")))
    await wait_for_reply(slack, "C0GENERAL", "1700000202.000100", "From the fallback.")
    assert claude.requests[-1].body["model"] == "claude-haiku-5-5"


async def test_an_error_mid_stream_is_retried_and_the_answer_replaced_not_duplicated(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    claude.script(MidStreamErrorReply("The answer beg"), TextReply("The answer, complete."))
    root = "1700000203.000100"
    await running.sender.send_event(event_callback(app_mention("hi", ts=root)))
    [answer] = await wait_for_reply(slack, "C0GENERAL", root, "The answer, complete.")
    assert answer.text == "The answer, complete."
    assert len(claude.requests) == 2


async def test_cut_off_and_dropped_streams_are_never_taken_as_complete(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    claude.script(TruncatedReply("Half an ans"), DisconnectReply("Half an ans"), TextReply("A whole answer."))
    root = "1700000204.000100"
    await running.sender.send_event(event_callback(app_mention("hi", ts=root)))
    [answer] = await wait_for_reply(slack, "C0GENERAL", root, "A whole answer.")
    assert answer.text == "A whole answer."
    assert len(claude.requests) == 3


async def test_a_persistent_mid_stream_failure_keeps_the_partial_answer_and_appends_a_note(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    claude.script(*(MidStreamErrorReply("Here is what I have so far") for _ in range(3)))
    root = "1700000205.000100"
    await running.sender.send_event(event_callback(app_mention("hi", ts=root)))
    [answer] = await wait_for_reply(slack, "C0GENERAL", root, "overloaded")
    assert answer.text.startswith("Here is what I have so far")
    assert answer.text.endswith("(request id `req_fake_3`)") or "request id" in answer.text


async def test_silence_times_out_but_a_long_steady_answer_does_not(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    running = await start_bot(claude_silence_timeout_s=0.4)
    steady = [f"word{i} " for i in range(12)]  # 12 x 0.1 s = 1.2 s in total, never silent for 0.4 s
    claude.script(StallReply("Hmm", stall_s=2.0), TextReply("".join(steady), chunks=steady, chunk_delay_s=0.1))
    root = "1700000206.000100"
    await running.sender.send_event(event_callback(app_mention("hi", ts=root)))
    [answer] = await wait_for_reply(slack, "C0GENERAL", root, "word11")
    assert answer.text == "".join(steady).strip()
    assert len(claude.requests) == 2


async def test_redis_briefly_unreachable_the_user_is_told_and_the_answer_still_comes(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis_url: str
) -> None:
    from tests.contract.test_redis_store import _proxy_for

    proxy = await _proxy_for(redis_url)
    running = await start_bot(redis_url=proxy.url)
    claude.script(TextReply("Still here."), TextReply("Yes, all fine."))
    await proxy.cut()
    root = "1700000207.000100"
    await running.sender.send_event(event_callback(app_mention("are you there?", ts=root)))
    # Told privately: the question waits for Redis, without which a Slack retry could not be told from it.
    await eventually(
        lambda: any("memory store is unreachable" in c.params.get("text", "") for c in slack.ephemerals),
        "an ephemeral saying Redis is away",
    )
    await proxy.restore()
    [answer] = await wait_for_reply(slack, "C0GENERAL", root, "Still here.")
    assert answer.text == "Still here."
    # Recovered for good: the next follow-up continues the conversation stored after the outage.
    await running.sender.send_event(event_callback(message("and now?", thread_ts=root)))
    await wait_for_reply(slack, "C0GENERAL", root, "Yes, all fine.")
    assert "are you there?" in str(claude.requests[-1].messages)
    assert len(bot_messages(slack, "C0GENERAL", root)) == 2
    await proxy.stop()
