"""Answers whose process died mid-way, finished by another process (or by the same one once it is back).

Every process renews the answers it is writing (`Answers`, its heartbeat task) and sweeps for lapsed ones
(`Answers.claim_lapsed`: each is claimed by one process only) at start-up, whenever an answer's start or end saw one,
and every SWEEP_S otherwise, so an answer left behind is finished within about LIVE_FOR_S + SWEEP_S
(bot/core/answers.py; under 30 s). Finishing it in Slack:
- an answer shown by edits (bot/slack/reply_stream.py) is found in its thread by its Stop button's block id; its
  message keeps the text shown (without the streaming cursor and status line) and gets the interrupted note and the
  finished answer's buttons (👍 / 👎 / Regenerate) in one chat.update. Earlier messages of a long answer are already
  complete and keep their text.
- an answer streamed natively (bot/slack/native_stream.py) is stopped with chat.stopStream, its last chunk the note
  and its blocks the buttons; Slack keeps the text streamed so far. Should Slack no longer take the stop (the stream
  ended on its side), its text is read back and the message is rewritten with chat.update.
- an answer with no message of its own yet (it died before its placeholder or first words) gets a new message with
  the note and the buttons.
Its record becomes "interrupted", with its question's place in history, so Regenerate works on it. History is not
changed: the question is already stored, and a tool round saved before the end stays as it was.
A question that never reached history (acked, then waiting for its thread when its process died: Slack will not send
it again) is asked again here from its record (bot/core/replay.py); its placeholder, if it had one, says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core import texts
from bot.core.answers import AnswerRecord
from bot.core.conversation import IncomingMessage, StoredConversation
from bot.core.errors import StorageUnavailable
from bot.core.i18n import tr
from bot.core.ports import ConversationStore
from bot.core.replay import message_from_replay, question_stored
from bot.slack.delivery import deliver
from bot.slack.incoming import Place
from bot.slack.paced_calls import PacedCalls
from bot.slack.reply_notes import FAILURE_PREFIX
from bot.slack.reply_stream import CONTROLS_TEXT_LIMIT, SECTION_TEXT_LIMIT, STREAMING_CURSOR
from bot.slack.views import answer_controls, controls_block_id
from bot.slack.workspaces import WorkspaceClients, WorkspaceNotInstalled

if TYPE_CHECKING:
    from bot.slack.deps import SlackDeps

log = logging.getLogger(__name__)

SWEEP_S = 5.0  # how often an idle process looks for lapsed answers (a busy one looks with every answer)
TICK_S = 1.0  # how often the loop checks, locally, whether a sweep is due
THREAD_READ_LIMIT = 200  # messages of a thread (or a DM's recent history) searched for the answer's message


class AnswerRecovery:
    """The background loop of every process: finish the lapsed answers of others."""

    def __init__(
        self,
        deps: SlackDeps,
        workspaces: WorkspaceClients,
        conversations: ConversationStore,
        *,
        sweep_s: float = SWEEP_S,
    ) -> None:
        self._deps = deps
        self._workspaces = workspaces
        self._conversations = conversations
        self._sweep_s = sweep_s
        self._asked_again: set[asyncio.Task[None]] = set()  # questions of dead processes, being answered here

    async def run(self, stopping: asyncio.Event) -> None:
        """Until `stopping` is set, sweep when due: at once on start-up (a process that died before this one started
        may have left answers), then every sweep_s without an answer starting or ending here, or when one of those
        saw a lapsed answer. Checked every TICK_S, locally. (This process's own answers are renewed by `Answers`.)"""
        while not stopping.is_set():
            if self._deps.answers.sweep_due(self._sweep_s):
                with _logged("finish the answers of a stopped process"):
                    await self.sweep()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), TICK_S)

    async def sweep(self) -> int:
        """Finish every lapsed answer this process could claim; how many it finished."""
        finished = 0
        for record in await self._deps.answers.claim_lapsed():
            finished += await self._finish(record)
        return finished

    async def _finish(self, record: AnswerRecord) -> bool:
        """Show it as interrupted (or ask its question again, if it never reached history), then close its record.
        A Slack refusal is final (logged, the record closed all the same); a failure to reach Slack or Redis leaves
        it claimed, to be tried again when the claim lapses."""
        again: IncomingMessage | None = None
        stored: StoredConversation | None = None
        try:
            client = await self._workspaces.client(record.workspace_id)
            await self._deps.directory.speak_to(client, record.workspace_id, record.asker_id)
            stored = await self._conversations.load(record.key)
            again = message_from_replay(record.key, record.asker_id, record.replay)
            if again is not None and not question_stored(stored.turns, again):
                await show_asked_again(client, self._deps, record)
            else:
                again = None
                await show_interrupted(client, self._deps, record)
        except SlackApiError as error:
            if error.response.status_code == 429 or error.response.status_code >= 500:
                log.warning("Slack is busy or failing (%s); will try again", error.response.status_code)
                return False
            log.warning("could not show an interrupted answer: %s; closing it", error.response.get("error"))
        except WorkspaceNotInstalled:
            log.info("an interrupted answer's workspace is no longer installed; closing it")
            again = None
        except Exception as error:
            log.warning("could not show an interrupted answer (%s); will try again", type(error).__name__)
            return False
        try:
            stored = stored or await self._conversations.load(record.key)
            await self._deps.answers.interrupted(record, stored.turns)
        except StorageUnavailable:
            log.warning("could not close an interrupted answer's record; will try again")
            return False
        if again is not None:
            self._ask_again(client, record, again)
        log.info("finished an interrupted answer", extra={"workspace": record.workspace_id, "asked_again": bool(again)})
        return True

    def _ask_again(self, client: AsyncWebClient, record: AnswerRecord, message: IncomingMessage) -> None:
        """Answer the question anew here, as if it had just been asked (it was acked, so Slack will not send it
        again). It waits for the thread like any question: the dead process's lease runs out first."""
        place = Place(record.channel_id, record.shown_in or None)
        task = asyncio.create_task(deliver(self._deps, client, message, place), name="answer-asked-again")
        self._asked_again.add(task)
        task.add_done_callback(self._asked_again.discard)


async def show_asked_again(client: AsyncWebClient, deps: SlackDeps, record: AnswerRecord) -> None:
    """The dead answer's message, if it had one (a placeholder: its question never reached history), says the
    question is being answered again, without buttons; the new answer follows in a message of its own."""
    found = await _answer_message(client, record)
    if found is None or not _has_block(found, controls_block_id(record.answer_id, final=False)):
        return
    calls = PacedCalls(client, deps.budget, deps.render.pacing, record.workspace_id, record.channel_id)
    note = tr(texts.ASKED_AGAIN)
    await calls.edit(ts=str(found["ts"]), text=note, blocks=[_section(note)])


async def show_interrupted(client: AsyncWebClient, deps: SlackDeps, record: AnswerRecord) -> None:
    """Make the answer's message say it was interrupted and offer Regenerate (module docstring). Repeatable: an
    answer already shown so (its buttons are the finished ones) is left as it is."""
    calls = PacedCalls(client, deps.budget, deps.render.pacing, record.workspace_id, record.channel_id)
    note = FAILURE_PREFIX + tr(texts.CUT_OFF)
    buttons = answer_controls(record.answer_id, final=True)
    found = await _answer_message(client, record)
    if found is not None and _has_block(found, controls_block_id(record.answer_id, final=True)):
        return
    if found is not None and _has_block(found, controls_block_id(record.answer_id, final=False)):
        await _close_message(calls, record, str(found["ts"]), _kept_text(str(found.get("text", ""))), (note, buttons))
        return
    if record.stream_ts:
        try:
            await calls.spend(
                "chat.stopStream",
                channel=record.channel_id,
                ts=record.stream_ts,
                chunks=[{"type": "markdown_text", "text": "\n\n" + note}],
                blocks=buttons,
            )
            return
        except SlackApiError as error:  # the stream ended on Slack's side: rewrite the message as it stands
            log.info("could not stop an interrupted stream (%s); rewriting it", error.response.get("error"))
        shown = found or await _message_at(client, record.channel_id, record.stream_ts)
        if shown is not None:
            await _close_message(calls, record, record.stream_ts, str(shown.get("text", "")).strip(), (note, buttons))
            return
    await calls.post(text=note, blocks=[_section(note), *buttons], **_in_thread(record))


async def _close_message(
    calls: PacedCalls, record: AnswerRecord, ts: str, kept: str, ending: tuple[str, list[dict[str, Any]]]
) -> None:
    """The kept text with the note and the buttons (`ending`) under it; if together they are too long for one
    message with buttons, the kept text stays alone and the note follows in a message of its own."""
    note, buttons = ending
    body = f"{kept}\n\n{note}" if kept else note
    if len(body) <= CONTROLS_TEXT_LIMIT:
        await calls.edit(ts=ts, text=body, blocks=[_section(body), *buttons])
        return
    await calls.edit(ts=ts, text=kept, blocks=[])
    await calls.post(text=note, blocks=[_section(note), *buttons], **_in_thread(record))


def _kept_text(shown: str) -> str:
    """What the person saw of the answer itself: the text before the streaming cursor. A message without the
    cursor showed only a status ("Thinking…"), which is not kept."""
    text, cursor, _status = shown.rpartition(STREAMING_CURSOR)
    return text.rstrip() if cursor else ""


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:SECTION_TEXT_LIMIT]}}


def _in_thread(record: AnswerRecord) -> dict[str, Any]:
    return {"thread_ts": record.shown_in} if record.shown_in else {}


def _has_block(message: dict[str, Any], block_id: str) -> bool:
    return any(isinstance(b, dict) and b.get("block_id") == block_id for b in message.get("blocks") or [])


async def _answer_message(client: AsyncWebClient, record: AnswerRecord) -> dict[str, Any] | None:
    """The answer's message with buttons (running or finished), from its thread or, for a top-level DM answer,
    from the channel's recent history; None when it has none."""
    ids = {controls_block_id(record.answer_id, final=final) for final in (False, True)}
    try:
        messages = await _recent_messages(client, record)
    except SlackApiError as error:
        if error.response.get("error") != "thread_not_found":
            raise  # not read: tried again later rather than risk a second note beside a message still running
        messages = []
    for message in reversed(messages):
        if any(_has_block(message, block_id) for block_id in ids):
            return dict(message)
    return None


async def _recent_messages(client: AsyncWebClient, record: AnswerRecord) -> list[dict[str, Any]]:
    if record.shown_in:
        response = await client.conversations_replies(
            channel=record.channel_id, ts=record.shown_in, limit=THREAD_READ_LIMIT
        )
        return list(response.get("messages") or [])
    response = await client.conversations_history(channel=record.channel_id, limit=THREAD_READ_LIMIT)
    return list(reversed(response.get("messages") or []))  # oldest first, as a thread reads


async def _message_at(client: AsyncWebClient, channel: str, ts: str) -> dict[str, Any] | None:
    """One message by its ts (conversations.replies on a reply's ts returns just that message)."""
    with contextlib.suppress(SlackApiError):
        response = await client.conversations_replies(channel=channel, ts=ts, limit=1, inclusive=True)
        for message in response.get("messages") or []:
            if message.get("ts") == ts:
                return dict(message)
    return None


@contextlib.contextmanager
def _logged(what: str) -> Iterator[None]:
    """The loop outlives any one failure: Redis away, a bug in one record's handling."""
    try:
        yield
    except StorageUnavailable:
        log.warning("could not %s: storage unavailable; trying again shortly", what)
    except Exception:
        log.exception("could not %s; trying again shortly", what)
