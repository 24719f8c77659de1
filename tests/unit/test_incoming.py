"""Which Slack messages the bot answers, and how they become core messages."""

from __future__ import annotations

from bot.slack.incoming import MessageKind, classify_message, strip_mention, thread_place, to_message

BOT = "UBOT"


def event(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {"type": "message", "user": "U1", "text": "hi", "ts": "10.1", "channel": "C1"}
    base["channel_type"] = "channel"
    base.update(fields)
    return base


def test_mention_is_stripped_but_other_people_stay() -> None:
    assert strip_mention("<@UBOT> ask <@U2> about it", BOT) == "ask <@U2> about it"
    assert strip_mention("hey <@UBOT|claude>, hi", BOT) == "hey , hi"


def test_classification_of_message_events() -> None:
    assert classify_message(event(text="<@UBOT> hi"), BOT) is MessageKind.MENTION
    assert classify_message(event(thread_ts="9.1"), BOT) is MessageKind.THREAD_REPLY
    assert classify_message(event(), BOT) is MessageKind.IGNORE  # top-level chatter in a channel
    assert classify_message(event(channel_type="im", channel="D1"), BOT) is MessageKind.DM
    assert classify_message(event(channel_type="im", channel="D1", thread_ts="9.1"), BOT) is MessageKind.DM_THREAD


def test_bots_edits_and_the_bot_itself_are_ignored() -> None:
    assert classify_message(event(bot_id="B2", thread_ts="9.1"), BOT) is MessageKind.IGNORE
    assert classify_message(event(subtype="message_changed", thread_ts="9.1"), BOT) is MessageKind.IGNORE
    assert classify_message(event(user=BOT, channel_type="im"), BOT) is MessageKind.IGNORE
    assert classify_message(event(subtype="file_share", thread_ts="9.1"), BOT) is MessageKind.THREAD_REPLY


def test_answers_go_to_the_thread_root() -> None:
    assert thread_place(event(ts="10.1")).thread_ts == "10.1"
    assert thread_place(event(ts="10.1", thread_ts="9.1")).thread_ts == "9.1"


def test_core_message_carries_workspace_channel_and_thread() -> None:
    message = to_message(event(text="<@UBOT> why?", thread_ts="9.1"), "T1", BOT, thread_id="9.1")
    assert (message.key.workspace_id, message.key.channel_id, message.key.thread_id) == ("T1", "C1", "9.1")
    assert (message.text, message.user_id, message.message_id) == ("why?", "U1", "10.1")
