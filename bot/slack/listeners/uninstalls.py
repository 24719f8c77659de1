"""app_uninstalled and tokens_revoked: forget the workspace's tokens at once, and its data after a grace period.

Bolt authorizes these two events without a token (the token is already gone), so they arrive even for a workspace
whose installation was deleted. The delayed purge is scheduled in Redis; reinstalling before it runs cancels it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext

from bot.slack.incoming import workspace_of

if TYPE_CHECKING:
    from bot.slack.deps import SlackDeps

log = logging.getLogger(__name__)


def register(app: AsyncApp, deps: SlackDeps) -> None:
    @app.event("app_uninstalled")
    async def on_uninstalled(context: AsyncBoltContext) -> None:
        if deps.installations is not None:
            await deps.installations.async_delete_all(**_installation_ids(context))
        await deps.retention.left(workspace_of(context))

    @app.event("tokens_revoked")
    async def on_tokens_revoked(event: dict[str, Any], context: AsyncBoltContext) -> None:
        raw = event.get("tokens")
        tokens: dict[str, Any] = raw if isinstance(raw, dict) else {}
        user_ids = [u for u in tokens.get("oauth") or [] if isinstance(u, str)]
        bot_revoked = bool(tokens.get("bot"))
        if deps.installations is not None:
            for user_id in user_ids:
                await deps.installations.async_delete_installation(**_installation_ids(context), user_id=user_id)
            if bot_revoked:
                await deps.installations.async_delete_bot(**_installation_ids(context))
        if bot_revoked:
            # Without its bot token the app can do nothing there: treat it like an uninstall.
            await deps.retention.left(workspace_of(context))


def _installation_ids(context: AsyncBoltContext) -> dict[str, str | None]:
    """How the installation store names this workspace: an org-wide install has no team of its own."""
    return {
        "enterprise_id": context.enterprise_id,
        "team_id": None if context.is_enterprise_install else context.team_id,
    }
