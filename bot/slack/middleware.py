"""Request filters that apply to every listener: redeliveries, double deliveries and other bots."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.response import BoltResponse

from bot.core.errors import StorageUnavailable
from bot.core.ports import EventLedger
from bot.slack.incoming import is_answerable

log = logging.getLogger(__name__)

# Bolt must ack within Slack's 3 s; de-duplication never gets to eat that budget.
_LEDGER_TIMEOUT_S = 1.0


def delivery_ids(body: dict[str, Any]) -> list[str]:
    """Ids under which a delivery counts as already handled.

    `event:<id>`: Slack's retries repeat the event_id. `msg:<team>:<channel>:<ts>`: a mention in a channel
    arrives twice, as app_mention and as message, with different event_ids but the same message ts.
    None for a `message` nobody answers (someone's edit or deletion, a join; in a busy channel most messages are
    these): the listener ignores it anyway, so a repeat costs nothing and a check would. (The bot's own posts and
    edits never get here: Bolt acks its own events first.)
    """
    if body.get("type") != "event_callback":
        return []
    event = body.get("event") or {}
    if event.get("type") == "message" and not is_answerable(event):
        return []
    ids = []
    if body.get("event_id"):
        ids.append(f"event:{body['event_id']}")
    if event.get("type") in ("app_mention", "message") and is_answerable(event) and event.get("channel"):
        ids.append(f"msg:{body.get('team_id')}:{event['channel']}:{event['ts']}")
    return ids


async def reject_malformed(body: dict[str, Any], next: Callable[[], Awaitable[None]]) -> Any:
    """Runs after signature checks but before Bolt's own parsing, which crashes on a non-object `event`."""
    if body.get("type") == "event_callback" and not isinstance(body.get("event"), dict):
        log.warning("rejecting an event_callback without an event object")
        return BoltResponse(status=400, body="malformed event")
    return await next()


def register(app: AsyncApp, ledger: EventLedger) -> None:
    @app.middleware
    async def ignore_other_bots(body: dict[str, Any], next: Callable[[], Awaitable[None]]) -> Any:
        event = body.get("event") or {}
        if body.get("type") == "event_callback" and (event.get("bot_id") or event.get("subtype") == "bot_message"):
            return BoltResponse(status=200, body="")
        return await next()

    @app.middleware
    async def drop_redeliveries(body: dict[str, Any], next: Callable[[], Awaitable[None]]) -> Any:
        ids = delivery_ids(body)
        if not ids:
            return await next()
        kinds = [delivery_id.split(":")[0] for delivery_id in ids]
        try:
            # asyncio.timeout, not wait_for: no extra task, so no extra trip round a busy event loop before the ack.
            async with asyncio.timeout(_LEDGER_TIMEOUT_S):
                firsts = await ledger.first_sightings(ids)
        except (StorageUnavailable, TimeoutError):
            # Fail open: a possible double answer beats losing the only copy of a message.
            log.warning("could not check %s for redelivery; processing it", "/".join(kinds))
            return await next()
        repeated = [kind for kind, first in zip(kinds, firsts, strict=True) if not first]
        if repeated:
            log.info("dropping a repeated delivery (%s)", "/".join(repeated))
            return BoltResponse(status=200, body="")
        return await next()
