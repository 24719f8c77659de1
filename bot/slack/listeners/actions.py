"""Button clicks: Approve / Deny for tools that act on the world."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond

from bot.core.errors import StorageUnavailable
from bot.slack.incoming import workspace_of
from bot.slack.views import APPROVE_ACTION, DENY_ACTION

if TYPE_CHECKING:
    from bot.slack.app import SlackDeps

_REPLIES = {
    "not_yours": "Only the person who asked can approve or deny this.",
    "expired": "This request has already been decided or has expired.",
}


def register(app: AsyncApp, deps: SlackDeps) -> None:
    async def decide(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext, approved: bool
    ) -> None:
        await ack()
        action = (body.get("actions") or [{}])[0]
        user = (body.get("user") or {}).get("id", "")
        try:
            outcome = await deps.approvals.decide(workspace_of(context), str(action.get("value", "")), user, approved)
        except StorageUnavailable as error:
            await respond(text=error.user_message, response_type="ephemeral", replace_original=False)
            return
        if outcome != "ok":
            await respond(text=_REPLIES.get(outcome, outcome), response_type="ephemeral", replace_original=False)
        # On "ok" the waiting answer updates the prompt itself, wherever that answer is running.

    @app.action(APPROVE_ACTION)
    async def approve(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext) -> None:
        await decide(ack, body, respond, context, approved=True)

    @app.action(DENY_ACTION)
    async def deny(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext) -> None:
        await decide(ack, body, respond, context, approved=False)
