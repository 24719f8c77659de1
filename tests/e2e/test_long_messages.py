"""Nothing cut, nothing silently dropped: an answer Slack finds too long is split into more messages, a long note is
split like the answer, and when Slack still refuses the asker is told."""

from __future__ import annotations

from tests.e2e.conftest import BotFactory, RunningBot
from tests.e2e.helpers import bot_messages, eventually, settle, wait_for_reply
from tests.fakes.anthropic_api import FakeAnthropic, TextReply
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import app_mention, event_callback

PARAGRAPHS = [f"Paragraph {n:02d}: " + " ".join(f"word{n}-{i}" for i in range(8)) for n in range(12)]


async def test_a_final_message_slack_finds_too_long_is_split_into_more_messages_with_every_word(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    first, last = "\n\n".join(PARAGRAPHS[:-1]), "\n\n" + PARAGRAPHS[-1]
    claude.script(TextReply(first + last, chunks=[first, last], chunk_delay_s=2.0))
    root = "1700000901.000100"
    await running.sender.send_event(event_callback(app_mention("a long one please", ts=root)))

    def streamed() -> bool:
        return any("Paragraph 10" in m.text for m in bot_messages(slack, "C0GENERAL", root))

    await eventually(streamed, "the first part streamed in one message")
    # Then Slack turns strict for the final text: msg_too_long until it is split into many small messages.
    slack.text_limit = 300
    await wait_for_reply(slack, "C0GENERAL", root, "Paragraph 11", timeout=30)
    await settle(1.0)

    messages = bot_messages(slack, "C0GENERAL", root)
    assert all(len(m.text) <= 300 for m in messages), [len(m.text) for m in messages]
    shown = "\n".join(m.text for m in messages)
    assert [word for p in PARAGRAPHS for word in p.split() if word not in shown] == [], "every word is shown"
    assert len(messages) >= len(first + last) // 300


async def test_when_slack_refuses_even_short_messages_the_asker_is_told(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    claude.script(TextReply("\n\n".join(PARAGRAPHS[:3])))
    root = "1700000902.000100"
    slack.text_limit = 120  # below what any split can reach: the answer cannot be shown
    await running.sender.send_event(event_callback(app_mention("hello", ts=root)))

    def told() -> bool:
        return any("incomplete" in m.text for m in bot_messages(slack, "C0GENERAL", root))

    await eventually(told, "a message saying the answer is incomplete", timeout=30)


async def test_a_note_longer_than_a_message_is_split_not_cut(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    running = await start_bot(max_message_chars=500)
    name = "-".join(f"part{i:03d}" for i in range(90)) + ".png"  # a file name longer than a whole message
    file = slack.add_file(b"not,an,image\n", name=name, mimetype="image/png")
    root = "1700000903.000100"
    await running.sender.send_event(event_callback(app_mention("", ts=root, files=[file])))
    await wait_for_reply(slack, "C0GENERAL", root, "part089.png", timeout=30)
    await settle(0.5)

    messages = bot_messages(slack, "C0GENERAL", root)
    assert all(len(m.text) <= 500 for m in messages)
    shown = "".join(m.text for m in messages)
    assert [f"part{i:03d}" for i in range(90) if f"part{i:03d}" not in shown] == []
