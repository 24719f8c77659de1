"""Request filters that apply to every listener: request context, shutdown, redeliveries, double deliveries and
other bots."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext, AsyncRespond
from slack_bolt.response import BoltResponse

from bot import logs
from bot.core import texts
from bot.core.errors import StorageUnavailable
from bot.core.i18n import tr
from bot.core.ports import EventLedger
from bot.metrics import Metrics
from bot.slack.delivery import AnswersInProgress
from bot.slack.incoming import from_a_bot, is_answerable, workspace_of
from bot.slack.pacing import LEDGER_OUTAGE_WAIT_S, LEDGER_TIMEOUT_S

log = logging.getLogger(__name__)


# Called once when a question's check starts waiting for Redis, so the asker hears why nothing happens yet.
OnWait = Callable[[], Awaitable[None]]


async def _nothing() -> None:
    return None


class _Sighting:
    """A question's de-duplication check, made after the ack and only if a listener answers the delivery (the
    `message` copy of a channel mention is ignored by its listener, so its check would be a wasted round trip)."""

    def __init__(self, check: Callable[[OnWait], Awaitable[bool]]) -> None:
        self._check = check
        self._result: asyncio.Future[bool] | None = None

    async def first(self, on_wait: OnWait) -> bool:
        if self._result is None:
            self._result = asyncio.ensure_future(self._check(on_wait))
        return await asyncio.shield(self._result)


class RecentDeliveries:
    """The delivery ids this process claimed lately: the first line of de-duplication, which needs no Redis, so a
    retry that reaches the same process is caught even while Redis is away. Bounded: at most `capacity` ids, each
    kept `ttl_s` (Slack's retries come within minutes); the oldest are forgotten first."""

    def __init__(
        self, *, capacity: int = 20_000, ttl_s: float = 900.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._capacity = capacity
        self._ttl_s = ttl_s
        self._clock = clock
        self._until: OrderedDict[tuple[str, str], float] = OrderedDict()

    def claim(self, workspace: str, ids: Sequence[str]) -> bool:
        """True if none of `ids` was claimed here lately; all of them are claimed from now on either way."""
        now = self._clock()
        while self._until and next(iter(self._until.values())) <= now:
            self._until.popitem(last=False)
        keys = [(workspace, delivery_id) for delivery_id in ids]
        first = not any(key in self._until for key in keys)
        for key in keys:
            self._until[key] = now + self._ttl_s
            self._until.move_to_end(key)
        while len(self._until) > self._capacity:
            self._until.popitem(last=False)
        return first

    def __len__(self) -> int:
        return len(self._until)


# Set in the Bolt context of an event the port acked before dispatching it (bot/server.py): it was taken while the
# bot still accepted work, so shutdown must not turn it away (a 503 would no longer reach Slack; it would be lost).
ACKED_AT_PORT = "acked_at_port"
_SIGHTING: contextvars.ContextVar[_Sighting | None] = contextvars.ContextVar("sighting", default=None)
# Requests that start new work, turned away while shutting down. Button clicks and view submissions still run: an
# answer finishing during the grace period may be waiting for its Approve click.
_NEW_WORK = frozenset({"slash_command", "message_action", "shortcut"})


def request_kind(body: dict[str, Any]) -> str:
    """A short, bounded name for a request (the event type for events), for metrics and log lines."""
    if body.get("type") == "event_callback":
        event = body.get("event")
        return str(event.get("type") or "unknown") if isinstance(event, dict) else "unknown"
    if body.get("command"):
        return "slash_command"
    return str(body.get("type") or "unknown")


def _id(value: Any) -> str | None:
    """Slack sends some ids as strings and some as objects with an id (`team`, `channel` in interactivity)."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def request_fields(body: dict[str, Any]) -> dict[str, str | None]:
    """Where a request comes from, for every log line while it is handled; ids only, never text."""
    raw_event = body.get("event")
    event: dict[str, Any] = raw_event if isinstance(raw_event, dict) else {}
    message: dict[str, Any] = body["message"] if isinstance(body.get("message"), dict) else {}
    container: dict[str, Any] = body["container"] if isinstance(body.get("container"), dict) else {}
    return {
        "workspace": _id(body.get("team_id")) or _id(body.get("team")) or _id(body.get("enterprise_id")),
        "channel": _id(event.get("channel")) or _id(body.get("channel_id")) or _id(body.get("channel")),
        "thread": _id(event.get("thread_ts") or event.get("ts"))
        or _id(container.get("thread_ts") or message.get("thread_ts") or message.get("ts")),
        "event_id": _id(body.get("event_id")),
    }


def _starts_work(body: dict[str, Any], kind: str) -> bool:
    """Turned away while shutting down: events and commands, not clicks on answers that may still be finishing."""
    return body.get("type") == "event_callback" or kind in _NEW_WORK


def _refusal(kind: str, body: dict[str, Any]) -> BoltResponse:
    """Events get a non-2xx, so Slack delivers them again (to another process, or to this one restarted); commands and
    shortcuts are never redelivered, so the person is told instead."""
    if body.get("type") == "event_callback":
        return BoltResponse(status=503, body="shutting down")
    if kind == "slash_command":
        return BoltResponse(status=200, body={"response_type": "ephemeral", "text": tr(texts.RESTARTING)})
    return BoltResponse(status=200, body="")


def delivery_ids(body: dict[str, Any]) -> list[str]:
    """Ids under which a delivery counts as already handled (the ledger keeps them per workspace).

    `event:<id>`: Slack's retries repeat the event_id. `msg:<channel>:<ts>`: a mention in a channel
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
        ids.append(f"msg:{event['channel']}:{event['ts']}")
    return ids


async def reject_malformed(body: dict[str, Any], next: Callable[[], Awaitable[None]]) -> Any:
    """Runs after signature checks but before Bolt's own parsing, which crashes on a non-object `event`."""
    if body.get("type") == "event_callback" and not isinstance(body.get("event"), dict):
        log.warning("rejecting an event_callback without an event object")
        return BoltResponse(status=400, body="malformed event")
    return await next()


def _is_question(body: dict[str, Any]) -> bool:
    event = body.get("event") or {}
    return event.get("type") in ("app_mention", "message") and is_answerable(event)


async def first_sighting(on_wait: OnWait = _nothing) -> bool:
    """False when the question being handled was already delivered (a retry, or the mention's second copy).

    Questions are acked before their de-duplication check: the check's Redis round trip, which can queue behind
    other work under load, is off the ack's path. Listeners that answer call this first; while Redis is unreachable
    it waits for it (calling `on_wait` once), so that a retry is never taken for a new question.
    """
    sighting = _SIGHTING.get()
    return True if sighting is None else await sighting.first(on_wait)


def register(
    app: AsyncApp,
    ledger: EventLedger,
    *,
    in_progress: AnswersInProgress,
    metrics: Metrics,
    recent: RecentDeliveries | None = None,
) -> None:
    dedup = _Deduplicator(ledger, recent or RecentDeliveries(), metrics)

    @app.middleware
    async def intake(
        body: dict[str, Any],
        respond: AsyncRespond | None,
        context: AsyncBoltContext,
        next: Callable[[], Awaitable[None]],
    ) -> Any:
        """First: name the request in every log line from here on, and turn new work away while shutting down.

        Events are refused *before* de-duplication marks them as seen, or Slack's redelivery would be dropped."""
        kind = request_kind(body)
        logs.start_request(kind=kind, **request_fields(body))
        if in_progress.accepting or context.get(ACKED_AT_PORT) or not _starts_work(body, kind):
            return await next()
        metrics.slack_event(kind, "refused")
        log.info("turning away a %s while shutting down", kind)
        if respond is not None and kind != "slash_command":
            try:
                await respond(text=tr(texts.RESTARTING), response_type="ephemeral", replace_original=False)
            except Exception as error:  # best effort: the person can simply try again
                log.warning("could not say that the bot is restarting: %s", type(error).__name__)
        return _refusal(kind, body)

    @app.middleware
    async def ignore_other_bots(body: dict[str, Any], next: Callable[[], Awaitable[None]]) -> Any:
        if body.get("type") == "event_callback" and from_a_bot(body):
            metrics.slack_event(request_kind(body), "ignored")
            return BoltResponse(status=200, body="")
        return await next()

    @app.middleware
    async def drop_redeliveries(
        body: dict[str, Any], context: AsyncBoltContext, next: Callable[[], Awaitable[None]]
    ) -> Any:
        ids = delivery_ids(body)
        if not ids:
            return await next()
        workspace, kind = workspace_of(context), request_kind(body)
        if _is_question(body):
            # Bolt acks events before their listener runs, and the listener task inherits this context variable.
            # A question's check may wait for Redis (it runs after the ack; the answer needs Redis anyway).
            check = functools.partial(dedup.check, workspace, ids, kind, wait_s=LEDGER_OUTAGE_WAIT_S)
            _SIGHTING.set(_Sighting(check))
            return await next()
        # Rarer events (joins, uninstalls...): checked before the ack, so never waiting out an outage.
        if not await dedup.check(workspace, ids, kind, wait_s=0.0):
            return BoltResponse(status=200, body="")
        return await next()


async def _ask_ledger(
    ledger: EventLedger, workspace: str, ids: list[str], wait_s: float, on_wait: OnWait
) -> list[bool] | None:
    """The ledger's answer, asked again (backing off) while Redis is unreachable for up to `wait_s`; None if it
    never answered."""
    claim = secrets.token_hex(8)
    loop = asyncio.get_running_loop()
    deadline, delay, warned = loop.time() + wait_s, 0.1, False
    while True:
        try:
            async with asyncio.timeout(LEDGER_TIMEOUT_S):
                return await ledger.first_sightings(workspace, ids, claim=claim)
        except (StorageUnavailable, TimeoutError):
            if loop.time() + delay > deadline:
                return None
            if not warned:
                log.warning("Redis is unreachable; the redelivery check waits for it")
                warned = True
                try:
                    await on_wait()
                except Exception as error:  # telling the asker is best effort; the wait goes on
                    log.warning("could not say that the answer waits for Redis: %s", type(error).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


class _Deduplicator:
    """Whether a delivery is new: this process's memory first, then the shared ledger."""

    def __init__(self, ledger: EventLedger, recent: RecentDeliveries, metrics: Metrics) -> None:
        self._ledger = ledger
        self._recent = recent
        self._metrics = metrics

    async def check(
        self, workspace: str, ids: list[str], kind: str, on_wait: OnWait = _nothing, *, wait_s: float
    ) -> bool:
        """The ledger is asked again while Redis is unreachable, for up to `wait_s` (a retry that went to another
        process must meet this claim there), under one claim so a lost reply is no duplicate. Past `wait_s` the
        delivery is let through: its answer needs Redis too, and says so if it is still away."""
        kinds = "/".join(delivery_id.split(":")[0] for delivery_id in ids)
        if not self._recent.claim(workspace, ids):
            log.info("dropping a repeated delivery (%s), seen by this process", kinds)
            self._metrics.slack_event(kind, "duplicate")
            return False
        firsts = await _ask_ledger(self._ledger, workspace, ids, wait_s, on_wait)
        if firsts is None:
            log.warning("could not check %s for redelivery; processing it", kinds)
            self._metrics.slack_event(kind, "accepted")
            return True
        repeated = [name for name, first in zip(kinds.split("/"), firsts, strict=True) if not first]
        if repeated:
            log.info("dropping a repeated delivery (%s)", "/".join(repeated))
            self._metrics.slack_event(kind, "duplicate")
            return False
        self._metrics.slack_event(kind, "accepted")
        return True
