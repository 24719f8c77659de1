"""Button clicks: Approve / Deny for tools that act on the world."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.core import texts
from bot.core.errors import StorageUnavailable
from bot.core.i18n import tr
from bot.slack.incoming import workspace_of
from bot.slack.views import APPROVE_ACTION, DENY_ACTION

if TYPE_CHECKING:
    from bot.slack.deps import SlackDeps

_REPLIES = {
    "not_yours": texts.APPROVAL_NOT_YOURS,
    "stopped": texts.APPROVAL_ANSWER_STOPPED,
    "expired": texts.APPROVAL_EXPIRED,
}


def register(app: AsyncApp, deps: SlackDeps) -> None:
    async def decide(
        ack: AsyncAck,
        body: dict[str, Any],
        respond: AsyncRespond,
        client: AsyncWebClient,
        context: AsyncBoltContext,
        approved: bool,
    ) -> None:
        await ack()
        action = (body.get("actions") or [{}])[0]
        user = (body.get("user") or {}).get("id", "")
        await deps.directory.speak_to(client, workspace_of(context), user)
        try:
            outcome = await deps.approvals.decide(workspace_of(context), str(action.get("value", "")), user, approved)
        except StorageUnavailable as error:
            await respond(text=error.user_message, response_type="ephemeral", replace_original=False)
            return
        if outcome != "ok":
            await respond(
                text=tr(_REPLIES.get(outcome, texts.APPROVAL_EXPIRED)),
                response_type="ephemeral",
                replace_original=False,
            )
        # On "ok" the waiting answer updates the prompt itself, wherever that answer is running.

    @app.action(APPROVE_ACTION)
    async def approve(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        await decide(ack, body, respond, client, context, approved=True)

    @app.action(DENY_ACTION)
    async def deny(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        await decide(ack, body, respond, client, context, approved=False)
