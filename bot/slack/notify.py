"""Direct messages to the people who look after the bot's spending (COST_ADMINS)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)


class SlackAdminNotifier:
    """Implements core.metering.AdminNotifier. Single-workspace install: one client serves every workspace id."""

    def __init__(self, client: AsyncWebClient, admin_ids: Iterable[str]) -> None:
        self._client = client
        self._admins = sorted(set(admin_ids))

    async def notify_admins(self, workspace_id: str, text: str) -> None:
        if not self._admins:
            log.warning("budget warning for %s, but COST_ADMINS is empty: %s", workspace_id, text)
            return
        for admin in self._admins:
            try:
                # Posting to a user id opens (or reuses) the app's DM with them.
                await self._client.chat_postMessage(channel=admin, text=text)
            except SlackApiError as error:
                log.warning("could not DM %s about the budget: %s", admin, error.response.get("error"))
