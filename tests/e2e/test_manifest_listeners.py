"""manifest.yml and the running app agree: everything the manifest declares reaches a listener (no 404s)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.e2e.conftest import RunningBot
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import (
    app_mention,
    event_callback,
    message,
    message_shortcut,
    slash_command,
)

MANIFEST: dict[str, Any] = yaml.safe_load((Path(__file__).resolve().parents[2] / "manifest.yml").read_text())
CHANNEL_TYPES = {"channels": "channel", "groups": "group", "im": "im", "mpim": "mpim"}


def inner_event(name: str) -> dict[str, Any]:
    """A minimal, realistic inner event for a manifest bot event name (Bolt answers 404 when nothing listens)."""
    if name == "app_mention":
        return app_mention("hello")
    if name.startswith("message."):
        kind = name.split(".", 1)[1]
        channel = {"im": "D0DM", "mpim": "G0MPIM", "groups": "G0PRIVATE"}.get(kind, "C0GENERAL")
        return message("an unrelated message", channel=channel, channel_type=CHANNEL_TYPES[kind])
    return {"type": name, "event_ts": "1700000000.000100"}


async def test_every_declared_slash_command_has_a_listener(running: RunningBot, slack: FakeSlack) -> None:
    commands = [c["command"] for c in MANIFEST["features"]["slash_commands"]]
    assert "/claude-reset" in commands
    for command in commands:
        status, body = await running.sender.send_command(
            slash_command(command, "", response_url=slack.new_response_url())
        )
        assert status == 200, (command, body)


async def test_every_declared_shortcut_has_a_listener(running: RunningBot, slack: FakeSlack) -> None:
    for shortcut in MANIFEST["features"]["shortcuts"]:
        payload = message_shortcut(
            shortcut["callback_id"],
            {"user": "U0USER", "ts": "1700000000.000100", "text": "x"},
            response_url=slack.new_response_url(),
        )
        status, body = await running.sender.send_interaction(payload)
        assert status == 200, (shortcut["callback_id"], body)


async def test_every_subscribed_event_has_a_listener(running: RunningBot) -> None:
    for name in MANIFEST["settings"]["event_subscriptions"]["bot_events"]:
        status, body = await running.sender.send_event(event_callback(inner_event(name)))
        assert status == 200, (name, body)
