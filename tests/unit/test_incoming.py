"""Which Slack messages the bot answers, and how they become core messages."""

from __future__ import annotations

from bot.slack.incoming import (
    MessageKind,
    acks_at_once,
    classify_message,
    from_a_bot,
    strip_mention,
    thread_place,
    to_message,
)

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


def test_what_a_bot_caused_is_known_from_the_event_alone() -> None:
    """The port acks and drops these without waking the bot's loop: every post and edit the bot makes comes back."""
    own_post = {"type": "event_callback", "event": {"type": "message", "bot_id": "B1", "text": "hi"}}
    own_edit = {
        "type": "event_callback",
        "event": {"type": "message", "subtype": "message_changed", "message": {"bot_id": "B1", "text": "hi!"}},
    }
    someone_edits = {
        "type": "event_callback",
        "event": {"type": "message", "subtype": "message_changed", "message": {"user": "U1", "text": "hi!"}},
    }
    question = {"type": "event_callback", "event": {"type": "app_mention", "user": "U1", "text": "<@B> hi"}}
    assert from_a_bot(own_post) and from_a_bot(own_edit)
    assert not from_a_bot(someone_edits) and not from_a_bot(question)
    assert acks_at_once(question) and not acks_at_once({"type": "event_callback", "event": "junk"})
    assert not acks_at_once({"type": "url_verification", "challenge": "x"})
