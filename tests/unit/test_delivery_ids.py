"""Which ids a delivery is de-duplicated under: what decides whether the ack waits on Redis at all."""

from __future__ import annotations

from bot.slack.middleware import delivery_ids
from tests.fakes.slack_requests import app_mention, event_callback, message, message_changed


def test_a_mention_is_checked_as_an_event_and_as_a_message() -> None:
    mention = event_callback(app_mention("hi", ts="1700000000.000100"), event_id="Ev1", team_id="T1")
    plain = event_callback(message("<@UBOT> hi", ts="1700000000.000100"), event_id="Ev2", team_id="T1")
    assert delivery_ids(mention) == ["event:Ev1", "msg:C0GENERAL:1700000000.000100"]
    assert delivery_ids(plain) == ["event:Ev2", "msg:C0GENERAL:1700000000.000100"]


def test_messages_nobody_answers_need_no_check() -> None:
    # Someone fixing a typo, someone joining: never answered, so never worth a round trip to Redis.
    edit = event_callback(message_changed("C0GENERAL", "1700000000.000200", "new text", user="U2"), event_id="Ev3")
    join = event_callback(message("<@U2> has joined", subtype="channel_join"), event_id="Ev4")
    assert delivery_ids(edit) == []
    assert delivery_ids(join) == []


def test_other_events_are_checked_by_event_id() -> None:
    reaction = event_callback({"type": "reaction_added", "user": "U1", "reaction": "eyes"}, event_id="Ev5")
    assert delivery_ids(reaction) == ["event:Ev5"]
    assert delivery_ids({"type": "url_verification", "challenge": "x"}) == []
