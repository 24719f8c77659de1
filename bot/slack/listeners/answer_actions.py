"""The buttons under every answer: Stop while it is being written; 👍 / 👎 and Regenerate once it is done.

The click may reach any bot process: Stop is a flag the writing process polls, votes and answer records live in
Redis, and Regenerate starts a new answer wherever the click landed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.core import texts
from bot.core.answers import CannotRegenerate, Vote
from bot.core.conversation import IncomingMessage
from bot.core.errors import StorageUnavailable
from bot.core.i18n import Text, tr
from bot.slack import incoming
from bot.slack.answering import answer_in_slack
from bot.slack.incoming import Place
from bot.slack.views import BAD_ANSWER_ACTION, GOOD_ANSWER_ACTION, REGENERATE_ACTION, STOP_ACTION

if TYPE_CHECKING:
    from bot.slack.deps import SlackDeps

STOP_REPLIES = {"not_yours": texts.STOP_NOT_YOURS, "finished": texts.STOP_FINISHED}
VOTE_REPLIES = {"ok": texts.VOTE_THANKS, "same": texts.VOTE_SAME, "unknown": texts.VOTE_TOO_OLD}


def register(app: AsyncApp, deps: SlackDeps) -> None:
    @app.action(STOP_ACTION)
    async def stop(
        ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext, respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await ack()
        await _speak_to_clicker(deps, client, body, context)
        workspace, user, answer_id = _click(body, context)
        try:
            outcome = await deps.answers.stop(workspace, answer_id, user)
        except StorageUnavailable as error:
            await _tell(respond, error.user_message)
            return
        if outcome != "ok":  # on "ok" the answer itself shows that it stopped
            await _tell(respond, STOP_REPLIES[outcome])

    async def vote(body: dict[str, Any], context: AsyncBoltContext, respond: AsyncRespond, choice: Vote) -> None:
        workspace, user, answer_id = _click(body, context)
        try:
            outcome = await deps.answers.vote(workspace, answer_id, user, choice)
        except StorageUnavailable as error:
            await _tell(respond, error.user_message)
            return
        await _tell(respond, VOTE_REPLIES[outcome])

    @app.action(GOOD_ANSWER_ACTION)
    async def good(
        ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext, respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await ack()
        await _speak_to_clicker(deps, client, body, context)
        await vote(body, context, respond, "up")

    @app.action(BAD_ANSWER_ACTION)
    async def bad(
        ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext, respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await ack()
        await _speak_to_clicker(deps, client, body, context)
        await vote(body, context, respond, "down")

    @app.action(REGENERATE_ACTION)
    async def regenerate(
        ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext, respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await ack()
        await _speak_to_clicker(deps, client, body, context)
        workspace, user, answer_id = _click(body, context)
        try:
            record = await deps.replies.regenerable(workspace, answer_id, user)
        except (CannotRegenerate, StorageUnavailable) as error:
            await _tell(respond, error.user_message)
            return
        message = IncomingMessage(
            key=record.key, message_id=f"regenerate-{answer_id}", user_id=user, text="", regenerates=answer_id
        )
        place = Place(channel_id=record.channel_id, thread_ts=record.shown_in or None)
        await answer_in_slack(deps, client, message, place)


async def _speak_to_clicker(
    deps: SlackDeps, client: AsyncWebClient, body: dict[str, Any], context: AsyncBoltContext
) -> None:
    await deps.directory.speak_to(client, incoming.workspace_of(context), str((body.get("user") or {}).get("id", "")))


def _click(body: dict[str, Any], context: AsyncBoltContext) -> tuple[str, str, str]:
    """(workspace, who clicked, the answer id the button carries)."""
    action = (body.get("actions") or [{}])[0]
    user = (body.get("user") or {}).get("id", "")
    return incoming.workspace_of(context), str(user), str(action.get("value", ""))


async def _tell(respond: AsyncRespond, text: str | Text) -> None:
    """Only the person who clicked sees it; the answer's message stays as it is."""
    await respond(text=tr(text) if isinstance(text, Text) else text, response_type="ephemeral", replace_original=False)
