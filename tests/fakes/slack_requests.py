"""What Slack sends to the bot: payload builders and a signed HTTP sender.

The builders return plain dicts shaped like real deliveries (Events API ``event_callback`` envelopes,
``app_mention`` / ``message`` events, slash-command form fields, ``block_actions`` payloads).  Send them

* over HTTP with :class:`SlackRequestSender` (signed like Slack signs: ``v0:{timestamp}:{raw_body}``
  HMAC-SHA256 with the signing secret, headers ``x-slack-signature`` / ``x-slack-request-timestamp``,
  plus ``x-slack-retry-num`` / ``x-slack-retry-reason`` on redeliveries), or
* over Socket Mode with ``FakeSlack.send_socket_envelope("events_api", event_callback(...))``
  (``"slash_commands"`` with the slash-command dict, ``"interactive"`` with a block_actions payload).

Timestamps (``ts``) default to unique, increasing values from the wall clock, so replies the fake Slack
creates afterwards sort after them.  This module must not import anything from the ``bot`` package.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import secrets
import time
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import aiohttp

if TYPE_CHECKING:
    from tests.fakes.slack_api import FakeSlack

__all__ = [
    "SlackRequestSender",
    "app_mention",
    "app_uninstalled",
    "assistant_thread_started",
    "block_action",
    "dm_message",
    "event_callback",
    "message",
    "message_changed",
    "new_ts",
    "sign",
    "slash_command",
    "tokens_revoked",
]

_event_ids = itertools.count(1)
_last_ts = 0


def new_ts() -> str:
    """A unique, increasing Slack timestamp string ("1700000000.000100" shape) from the wall clock."""
    global _last_ts
    micro = max(int(time.time() * 1_000_000), _last_ts + 100)
    _last_ts = micro
    return f"{micro // 1_000_000}.{micro % 1_000_000:06d}"


def _new_event_id() -> str:
    return f"Ev{next(_event_ids):04d}{secrets.token_hex(4).upper()}"


def _new_trigger_id() -> str:
    return f"{secrets.randbelow(10**10)}.{secrets.randbelow(10**10)}.{secrets.token_hex(16)}"


def _rich_text_blocks(text: str) -> list[dict[str, Any]]:
    return [
        {
            "type": "rich_text",
            "block_id": secrets.token_hex(3),
            "elements": [{"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}],
        }
    ]


def event_callback(
    event: dict[str, Any],
    *,
    team_id: str = "T0001",
    event_id: str | None = None,
    api_app_id: str = "A0001",
    bot_user_id: str = "UBOT",
    enterprise_id: str | None = None,
    is_enterprise_install: bool = False,
) -> dict[str, Any]:
    """The Events API outer envelope (slack.md §2.1) around an inner `event`.

    `team_id` is the workspace the event happened in; for an org-wide install (`is_enterprise_install`) the
    authorization names only the enterprise (its team_id is null).
    """
    event_time = int(time.time())
    if "event_ts" in event:
        event_time = int(float(event["event_ts"]))
    return {
        "token": "verification-token-unused",
        "team_id": team_id,
        "enterprise_id": enterprise_id,
        "context_team_id": team_id,
        "context_enterprise_id": enterprise_id,
        "api_app_id": api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or _new_event_id(),
        "event_time": event_time,
        "authorizations": [
            {
                "enterprise_id": enterprise_id,
                "team_id": None if is_enterprise_install else team_id,
                "user_id": bot_user_id,
                "is_bot": True,
                "is_enterprise_install": is_enterprise_install,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": "4-" + secrets.token_urlsafe(48),
    }


def _user_message_fields(
    text: str,
    user: str,
    channel: str,
    ts: str | None,
    thread_ts: str | None,
    files: list[dict[str, Any]] | None,
    team: str = "T0001",
) -> dict[str, Any]:
    ts = ts or new_ts()
    event: dict[str, Any] = {
        "user": user,
        "type": "",
        "ts": ts,
        "client_msg_id": str(uuid.uuid4()),
        "text": text,
        "team": team,
        "blocks": _rich_text_blocks(text) if text else [],
        "channel": channel,
        "event_ts": ts,
    }
    if thread_ts is not None:
        event["thread_ts"] = thread_ts
    if files:
        event["files"] = files
        event["upload"] = False
    return event


def app_mention(
    text: str,
    *,
    user: str = "U0USER",
    channel: str = "C0GENERAL",
    ts: str | None = None,
    thread_ts: str | None = None,
    bot_user_id: str = "UBOT",
    files: list[dict[str, Any]] | None = None,
    team: str = "T0001",
) -> dict[str, Any]:
    """An `app_mention` inner event; "<@UBOT> " is prefixed unless the text already mentions the bot."""
    mention = f"<@{bot_user_id}>"
    if mention not in text:
        text = f"{mention} {text}"
    event = _user_message_fields(text, user, channel, ts, thread_ts, files, team)
    event["type"] = "app_mention"
    return event


def message(
    text: str,
    *,
    user: str = "U0USER",
    channel: str = "C0GENERAL",
    channel_type: str = "channel",
    ts: str | None = None,
    thread_ts: str | None = None,
    subtype: str | None = None,
    bot_id: str | None = None,
    files: list[dict[str, Any]] | None = None,
    parent_user_id: str | None = None,
) -> dict[str, Any]:
    """A `message` inner event (message.channels / .groups / .im / .mpim by `channel_type`).

    With `files` and no `subtype` the subtype is "file_share" (with upload=true), as Slack sends uploads.
    With `bot_id` the event looks like a bot's message (no client_msg_id, bot_id + app_id).
    """
    event = _user_message_fields(text, user, channel, ts, thread_ts, files)
    event["type"] = "message"
    event["channel_type"] = channel_type
    if files and subtype is None:
        subtype = "file_share"
    if subtype is not None:
        event["subtype"] = subtype
    if subtype == "file_share":
        event["upload"] = True
    if bot_id is not None:
        event.pop("client_msg_id", None)
        event["bot_id"] = bot_id
        event["app_id"] = "A0001" if bot_id == "BBOT" else "A0OTHER"
    if thread_ts is not None and thread_ts != event["ts"] and parent_user_id is not None:
        event["parent_user_id"] = parent_user_id
    return event


def dm_message(
    text: str,
    *,
    user: str = "U0USER",
    channel: str = "D0DM",
    ts: str | None = None,
    thread_ts: str | None = None,
    files: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A `message` event in a 1:1 DM with the bot (channel_type "im")."""
    return message(text, user=user, channel=channel, channel_type="im", ts=ts, thread_ts=thread_ts, files=files)


def message_changed(
    channel: str,
    ts: str,
    new_text: str,
    *,
    previous_text: str = "",
    user: str = "U0USER",
    channel_type: str = "channel",
    thread_ts: str | None = None,
) -> dict[str, Any]:
    """A `message_changed` inner event: the message `ts` was edited to `new_text`."""
    event_ts = new_ts()
    new: dict[str, Any] = {
        "type": "message",
        "user": user,
        "text": new_text,
        "ts": ts,
        "edited": {"user": user, "ts": event_ts},
        "team": "T0001",
        "blocks": _rich_text_blocks(new_text),
    }
    old: dict[str, Any] = {"type": "message", "user": user, "text": previous_text, "ts": ts, "team": "T0001"}
    if thread_ts is not None:
        new["thread_ts"] = old["thread_ts"] = thread_ts
    return {
        "type": "message",
        "subtype": "message_changed",
        "message": new,
        "previous_message": old,
        "channel": channel,
        "hidden": True,
        "ts": event_ts,
        "event_ts": event_ts,
        "channel_type": channel_type,
    }


def assistant_thread_started(
    *,
    user: str = "U0USER",
    channel: str = "D0DM",
    thread_ts: str | None = None,
    context_channel_id: str | None = "C0GENERAL",
    team_id: str = "T0001",
    event_type: str = "assistant_thread_started",
) -> dict[str, Any]:
    """`assistant_thread_started` (or, with event_type=, `assistant_thread_context_changed`) inner event."""
    context: dict[str, Any] = {}
    if context_channel_id is not None:
        context = {"channel_id": context_channel_id, "team_id": team_id, "enterprise_id": None}
    return {
        "type": event_type,
        "assistant_thread": {
            "user_id": user,
            "context": context,
            "channel_id": channel,
            "thread_ts": thread_ts or new_ts(),
        },
        "event_ts": new_ts(),
    }


def message_shortcut(
    callback_id: str,
    message: dict[str, Any],
    *,
    response_url: str,
    user: str = "U0USER",
    channel: str = "C0GENERAL",
    team_id: str = "T0001",
) -> dict[str, Any]:
    """A `message_action` interaction payload (a message shortcut chosen from a message's ⋮ menu)."""
    return {
        "type": "message_action",
        "callback_id": callback_id,
        "trigger_id": _new_trigger_id(),
        "response_url": response_url,
        "team": {"id": team_id, "domain": "acme"},
        "channel": {"id": channel, "name": "directmessage" if channel.startswith("D") else "general"},
        "user": {"id": user, "name": "ada"},
        "message": {"type": "message", **message},
        "action_ts": new_ts(),
        "token": "x",
        "api_app_id": "A0001",
        "is_enterprise_install": False,
        "enterprise": None,
    }


def app_uninstalled() -> dict[str, Any]:
    """The `app_uninstalled` inner event: the app was removed from the workspace (or org) in the envelope."""
    return {"type": "app_uninstalled", "event_ts": new_ts()}


def tokens_revoked(*, bot: list[str] | None = None, oauth: list[str] | None = None) -> dict[str, Any]:
    """The `tokens_revoked` inner event: `bot` lists bot user ids, `oauth` user ids whose tokens were revoked."""
    return {"type": "tokens_revoked", "tokens": {"oauth": oauth or [], "bot": bot or []}, "event_ts": new_ts()}


def slash_command(
    command: str,
    text: str = "",
    *,
    user_id: str = "U0USER",
    channel_id: str = "C0GENERAL",
    team_id: str = "T0001",
    response_url: str,
    trigger_id: str | None = None,
    user_name: str = "user",
    channel_name: str = "general",
    api_app_id: str = "A0001",
) -> dict[str, str]:
    """Slash-command form fields (slack.md §5); also the Socket Mode `slash_commands` payload."""
    return {
        "token": "verification-token-unused",
        "team_id": team_id,
        "team_domain": "fake-workspace",
        "channel_id": channel_id,
        "channel_name": "directmessage" if channel_id.startswith("D") else channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": api_app_id,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id or _new_trigger_id(),
    }


def block_action(
    action_id: str,
    *,
    value: str | None = None,
    block_id: str = "actions",
    action_type: str = "button",
    user_id: str = "U0USER",
    channel_id: str = "C0GENERAL",
    message_ts: str | None = None,
    thread_ts: str | None = None,
    team_id: str = "T0001",
    response_url: str | None = None,
    trigger_id: str | None = None,
    api_app_id: str = "A0001",
) -> dict[str, Any]:
    """A `block_actions` interactivity payload for a click on a message button (or other element)."""
    action: dict[str, Any] = {
        "type": action_type,
        "action_id": action_id,
        "block_id": block_id,
        "action_ts": new_ts(),
    }
    if value is not None:
        action["value"] = value
    if action_type == "button":
        action["text"] = {"type": "plain_text", "text": action_id, "emoji": True}
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user_id, "username": "user", "name": "user", "team_id": team_id},
        "api_app_id": api_app_id,
        "token": "verification-token-unused",
        "container": {"type": "message", "channel_id": channel_id, "is_ephemeral": False},
        "trigger_id": trigger_id or _new_trigger_id(),
        "team": {"id": team_id, "domain": "fake-workspace"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": "general"},
        "state": {"values": {}},
        "actions": [action],
    }
    if message_ts is not None:
        payload["container"]["message_ts"] = message_ts
        msg: dict[str, Any] = {
            "type": "message",
            "user": "UBOT",
            "bot_id": "BBOT",
            "ts": message_ts,
            "text": "",
        }
        if thread_ts is not None:
            payload["container"]["thread_ts"] = thread_ts
            msg["thread_ts"] = thread_ts
        payload["message"] = msg
    if response_url is not None:
        payload["response_url"] = response_url
    return payload


def sign(signing_secret: str, timestamp: int, body: bytes) -> str:
    """Slack's request signature: "v0=" + hex HMAC-SHA256 of b"v0:{timestamp}:{body}"."""
    base = b"v0:" + str(timestamp).encode() + b":" + body
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


class SlackRequestSender:
    """Posts signed requests to the bot's HTTP endpoint (e.g. http://127.0.0.1:PORT/slack/events).

    `fake_slack`, if given, is told about every event payload sent (``FakeSlack.observe_event``) so its
    conversations.replies / history know the user's messages, as Slack's would.
    """

    def __init__(self, url: str, signing_secret: str, *, fake_slack: FakeSlack | None = None) -> None:
        self.url = url
        self.signing_secret = signing_secret
        self.fake_slack = fake_slack
        self.sent: list[dict[str, Any]] = []  # {"headers", "body", "status", "text"} per request
        self._session: aiohttp.ClientSession | None = None

    async def send_event(
        self,
        payload: dict[str, Any],
        *,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
        timestamp: int | None = None,
        signature: str | None = None,
    ) -> tuple[int, str]:
        if self.fake_slack is not None:
            self.fake_slack.observe_event(payload)
        body = json.dumps(payload).encode()
        return await self._post(body, "application/json", retry_num, retry_reason, timestamp, signature)

    async def send_command(
        self,
        form: dict[str, str],
        *,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
        timestamp: int | None = None,
        signature: str | None = None,
    ) -> tuple[int, str]:
        body = urlencode(form).encode()
        return await self._post(
            body, "application/x-www-form-urlencoded", retry_num, retry_reason, timestamp, signature
        )

    async def send_interaction(
        self,
        payload: dict[str, Any],
        *,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
        timestamp: int | None = None,
        signature: str | None = None,
    ) -> tuple[int, str]:
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return await self._post(
            body, "application/x-www-form-urlencoded", retry_num, retry_reason, timestamp, signature
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> SlackRequestSender:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _post(
        self,
        body: bytes,
        content_type: str,
        retry_num: int | None,
        retry_reason: str,
        timestamp: int | None,
        signature: str | None,
    ) -> tuple[int, str]:
        ts = int(time.time()) if timestamp is None else timestamp
        headers = {
            "Content-Type": content_type,
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
            "X-Slack-Request-Timestamp": str(ts),
            "X-Slack-Signature": signature if signature is not None else sign(self.signing_secret, ts, body),
        }
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = retry_reason
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        async with self._session.post(self.url, data=body, headers=headers) as resp:
            text = await resp.text()
            self.sent.append({"headers": headers, "body": body, "status": resp.status, "text": text})
            return resp.status, text
