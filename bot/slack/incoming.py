"""Slack payloads -> core types: mention stripped, thread root found, conversation key built."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

from slack_bolt.context.async_context import AsyncBoltContext

from bot.core.conversation import ConversationKey, IncomingMessage
from bot.core.workspaces import workspace_id
from bot.slack.files import incoming_files

_USER_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
# Subtypes that carry a person's words; everything else (edits, joins, bot posts) is not a question.
_ANSWERABLE_SUBTYPES = {None, "file_share", "thread_broadcast"}


def acks_at_once(body: dict[str, Any]) -> bool:
    """An Events API delivery: its ack is a bare 200 whatever the listener does, so the port can send it first."""
    return body.get("type") == "event_callback" and isinstance(body.get("event"), dict)


def from_a_bot(body: dict[str, Any]) -> bool:
    """An event a bot caused (this one's own posts and edits come back as events too): nobody answers those."""
    event = body.get("event")
    if not isinstance(event, dict):
        return False
    edited = event.get("message") if event.get("subtype") == "message_changed" else None
    by_a_bot = isinstance(edited, dict) and bool(edited.get("bot_id"))
    return by_a_bot or bool(event.get("bot_id") or event.get("subtype") == "bot_message")


class MessageKind(Enum):
    IGNORE = "ignore"
    MENTION = "mention"  # someone addressed the bot by name in a channel
    THREAD_REPLY = "thread_reply"  # a plain message in a channel thread; answered only if the bot is in it
    DM = "dm"  # a top-level DM: continues the rolling DM conversation
    DM_THREAD = "dm_thread"  # a thread inside a DM: its own conversation


@dataclass(frozen=True, slots=True)
class Place:
    """Where the answer goes: a channel, and a thread in it unless the reply is a top-level DM."""

    channel_id: str
    thread_ts: str | None


def mentions(text: str, bot_user_id: str | None) -> bool:
    return bot_user_id is not None and any(m == bot_user_id for m in _USER_MENTION.findall(text))


def strip_mention(text: str, bot_user_id: str | None) -> str:
    """Drop the bot's own mention; mentions of other people stay, Claude may need them."""
    if bot_user_id is None:
        return text.strip()
    pattern = re.compile(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>\s*")
    return re.sub(r"[ \t]{2,}", " ", pattern.sub("", text)).strip()


def is_answerable(event: dict[str, Any]) -> bool:
    return (
        event.get("subtype") in _ANSWERABLE_SUBTYPES
        and not event.get("bot_id")
        and bool(event.get("user"))
        and bool(event.get("ts"))
    )


def classify_message(event: dict[str, Any], bot_user_id: str | None) -> MessageKind:
    """Decide what a `message` event is to the bot; mentions arriving here are answered like app_mention."""
    if not is_answerable(event) or event.get("user") == bot_user_id:
        return MessageKind.IGNORE
    if event.get("channel_type") == "im":
        return MessageKind.DM_THREAD if event.get("thread_ts") else MessageKind.DM
    if mentions(event.get("text") or "", bot_user_id):
        return MessageKind.MENTION
    if event.get("thread_ts") and event.get("thread_ts") != event.get("ts"):
        return MessageKind.THREAD_REPLY
    return MessageKind.IGNORE


def thread_place(event: dict[str, Any]) -> Place:
    """Answer in the event's thread, or start one under the message itself."""
    return Place(channel_id=event["channel"], thread_ts=event.get("thread_ts") or event["ts"])


def to_message(event: dict[str, Any], workspace_id: str, bot_user_id: str | None, thread_id: str) -> IncomingMessage:
    key = ConversationKey(workspace_id=workspace_id, channel_id=event["channel"], thread_id=thread_id)
    return IncomingMessage(
        key=key,
        message_id=event["ts"],
        user_id=event["user"],
        text=strip_mention(event.get("text") or "", bot_user_id),
        files=incoming_files(event),
    )


def workspace_of(context: AsyncBoltContext) -> str:
    """The id a request's stored data is scoped by: its workspace, or its org for an org-wide install.

    Bolt reads the ids the same way from events, commands and interactions (authorizations[0] first, so a Slack
    Connect event counts for the installation that received it).
    """
    return workspace_id(
        enterprise_id=context.enterprise_id,
        team_id=context.team_id,
        is_enterprise_install=context.is_enterprise_install,
    )
