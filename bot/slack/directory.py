"""Who is asking and where: users.info and conversations.info, cached in Redis so a turn does not re-fetch them."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.conversation import Asker, ChannelContext
from bot.core.errors import StorageUnavailable
from bot.core.i18n import use_locale
from bot.core.ports import ProfileCache

log = logging.getLogger(__name__)


class Directory:
    """Lookups degrade gracefully: a missing scope or a Redis blip gives a thinner prompt, never a failed answer."""

    def __init__(self, cache: ProfileCache) -> None:
        self._cache = cache

    async def asker(self, client: AsyncWebClient, workspace_id: str, user_id: str) -> Asker:
        profile = await self._user(client, workspace_id, user_id)
        return Asker(
            user_id=user_id,
            display_name=profile.get("display_name", ""),
            title=profile.get("title", ""),
            timezone=profile.get("tz") or "UTC",
        )

    async def locale(self, client: AsyncWebClient, workspace_id: str, user_id: str) -> str:
        """The person's Slack language ("ja-JP"), or "" when unknown (the workspace default is spoken then)."""
        return (await self._user(client, workspace_id, user_id)).get("locale", "")

    async def speak_to(self, client: AsyncWebClient, workspace_id: str, user_id: str) -> str:
        """From here on (in this task and the ones it starts) the bot's words are in this person's language."""
        return use_locale(await self.locale(client, workspace_id, user_id) if user_id else "")

    async def is_admin(self, client: AsyncWebClient, workspace_id: str, user_id: str) -> bool:
        """From the profile cache (PROFILE_CACHE_TTL_S): for choices that cost nothing if briefly out of date."""
        return (await self._user(client, workspace_id, user_id)).get("is_admin") == "1"

    async def is_admin_now(self, client: AsyncWebClient, user_id: str) -> bool:
        """Asked of Slack afresh, for /claude-cost and /claude-budget; False when Slack cannot say (fail closed)."""
        profile = await self._fetch_user(client, user_id)
        return profile is not None and profile.get("is_admin") == "1"

    async def channel(self, client: AsyncWebClient, workspace_id: str, channel_id: str) -> ChannelContext:
        info = await self._cached("channel", workspace_id, channel_id, lambda: self._fetch_channel(client, channel_id))
        return ChannelContext(
            name=info.get("name", ""),
            kind=info.get("kind", "channel"),
            topic=info.get("topic", ""),
            purpose=info.get("purpose", ""),
        )

    async def _user(self, client: AsyncWebClient, workspace_id: str, user_id: str) -> dict[str, str]:
        return await self._cached("user", workspace_id, user_id, lambda: self._fetch_user(client, user_id))

    async def _cached(self, kind: str, workspace_id: str, object_id: str, fetch: Any) -> dict[str, str]:
        try:
            cached = await self._cache.get_profile(kind, workspace_id, object_id)
        except StorageUnavailable:
            cached = None
        if cached is not None:
            return cached
        fetched: dict[str, str] | None = await fetch()
        if fetched is None:
            return {}
        with contextlib.suppress(StorageUnavailable):
            await self._cache.put_profile(kind, workspace_id, object_id, fetched)
        return fetched

    @staticmethod
    async def _fetch_user(client: AsyncWebClient, user_id: str) -> dict[str, str] | None:
        try:
            # include_locale: the person's language, https://docs.slack.dev/reference/methods/users.info
            response = await client.users_info(user=user_id, include_locale=True)
        except SlackApiError as error:
            log.info("users.info failed: %s", error.response.get("error"))
            return None
        user = response.get("user") or {}
        profile = user.get("profile") or {}
        admin = bool(user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner"))
        return {
            "display_name": profile.get("display_name") or profile.get("real_name") or user.get("name") or "",
            "title": profile.get("title") or "",
            "tz": user.get("tz") or "UTC",
            "is_admin": "1" if admin else "0",
            "locale": user.get("locale") or "",
        }

    @staticmethod
    async def _fetch_channel(client: AsyncWebClient, channel_id: str) -> dict[str, str] | None:
        try:
            response = await client.conversations_info(channel=channel_id)
        except SlackApiError as error:
            log.info("conversations.info failed: %s", error.response.get("error"))
            return None
        channel = response.get("channel") or {}
        if channel.get("is_im"):
            kind = "direct message"
        elif channel.get("is_mpim"):
            kind = "group direct message"
        elif channel.get("is_private") or channel.get("is_group"):
            kind = "private channel"
        else:
            kind = "channel"
        return {
            "name": channel.get("name") or "",
            "kind": kind,
            "topic": (channel.get("topic") or {}).get("value") or "",
            "purpose": (channel.get("purpose") or {}).get("value") or "",
        }
