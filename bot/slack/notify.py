"""Direct messages to the people who look after the bot's spending (COST_ADMINS)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from slack_sdk.errors import SlackApiError

from bot.slack.admins import admins_for
from bot.slack.workspaces import WorkspaceClients, WorkspaceNotInstalled

log = logging.getLogger(__name__)


class SlackAdminNotifier:
    """Implements core.metering.AdminNotifier, writing as the workspace's own bot."""

    def __init__(self, workspaces: WorkspaceClients, admin_ids: Iterable[str]) -> None:
        self._workspaces = workspaces
        self._entries = sorted(set(admin_ids))

    async def notify_admins(self, workspace_id: str, text: str) -> None:
        admins = sorted(admins_for(self._entries, workspace_id))
        if not admins:
            log.warning("budget warning for %s, but COST_ADMINS is empty: %s", workspace_id, text)
            return
        try:
            client = await self._workspaces.client(workspace_id)
        except WorkspaceNotInstalled:
            log.warning("budget warning for %s, which no longer has the app installed: %s", workspace_id, text)
            return
        for admin in admins:
            try:
                # Posting to a user id opens (or reuses) the app's DM with them.
                await client.chat_postMessage(channel=admin, text=text, unfurl_links=False, unfurl_media=False)
            except SlackApiError as error:
                log.warning("could not DM %s about the budget: %s", admin, error.response.get("error"))
