"""Who is asking and where: users.info and conversations.info, cached in Redis so a turn does not re-fetch them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.call_windows import FairCallWindows
from bot.core.conversation import Asker, ChannelContext
from bot.core.errors import StorageUnavailable
from bot.core.i18n import use_locale
from bot.core.ports import ProfileCache
from bot.slack.pacing import allowance

log = logging.getLogger(__name__)

# The prompt's "who asks, where" may lag a profile edit by this much; it saves two Redis round trips per answer.
LOCAL_TTL_S = 300.0
LOCAL_ENTRIES = 20_000  # ~200 bytes each


class Directory:
    """Lookups degrade gracefully: a missing scope or a Redis blip gives a thinner prompt, never a failed answer."""

    def __init__(self, cache: ProfileCache, windows: FairCallWindows | None = None) -> None:
        self._cache = cache
        self._windows = windows  # users.info is Tier 4, conversations.info Tier 3: a burst of new askers must not 429
        self._local: OrderedDict[tuple[str, str, str], tuple[float, dict[str, str]]] = OrderedDict()
        self._pending: dict[tuple[str, str, str], asyncio.Future[dict[str, str]]] = {}

    async def asker(self, client: AsyncWebClient, workspace_id: str, user_id: str) -> Asker:
        profile = await self._remembered(
            "user", workspace_id, user_id, lambda: self._user(client, workspace_id, user_id)
        )
        return Asker(
            user_id=user_id,
            display_name=profile.get("display_name", ""),
            title=profile.get("title", ""),
            timezone=profile.get("tz") or "UTC",
        )

    async def locale(self, client: AsyncWebClient, workspace_id: str, user_id: str) -> str:
        """The person's Slack language ("ja-JP"), or "" when unknown (the workspace default is spoken then)."""
        look_up = lambda: self._user(client, workspace_id, user_id)  # noqa: E731
        return (await self._remembered("user", workspace_id, user_id, look_up)).get("locale", "")

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
        info = await self._remembered(
            "channel",
            workspace_id,
            channel_id,
            lambda: self._cached("channel", workspace_id, channel_id, lambda: self._fetch_channel(client, channel_id)),
        )
        return ChannelContext(
            name=info.get("name", ""),
            kind=info.get("kind", "channel"),
            topic=info.get("topic", ""),
            purpose=info.get("purpose", ""),
        )

    async def _remembered(self, kind: str, workspace_id: str, object_id: str, look_up: Any) -> dict[str, str]:
        """This process's copy first (admin checks never use it: they must see a demotion at once)."""
        key, now = (kind, workspace_id, object_id), time.monotonic()
        hit = self._local.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        if (pending := self._pending.get(key)) is not None:
            return await asyncio.shield(pending)  # the same look-up is under way for another answer: share it
        self._pending[key] = asyncio.get_running_loop().create_future()
        found: dict[str, str] = {}
        try:
            found = await look_up()
        finally:
            self._pending.pop(key).set_result(found)
        if found:
            self._local[key] = (now + LOCAL_TTL_S, found)
            self._local.move_to_end(key)
            while len(self._local) > LOCAL_ENTRIES:
                self._local.popitem(last=False)
        return found

    async def _user(self, client: AsyncWebClient, workspace_id: str, user_id: str) -> dict[str, str]:
        return await self._cached("user", workspace_id, user_id, lambda: self._fetch_user(client, user_id))

    async def _cached(self, kind: str, workspace_id: str, object_id: str, fetch: Any) -> dict[str, str]:
        try:
            cached = await self._cache.get_profile(kind, workspace_id, object_id)
        except StorageUnavailable:
            cached = None
        if cached is not None:
            return cached
        method = "users.info" if kind == "user" else "conversations.info"
        if self._windows is not None and not await self._windows.try_take([allowance(method, workspace_id)], keep=0):
            log.info("%s skipped: the workspace's allowance is spent", method)
            return {}  # a thinner prompt this time; not remembered, so the next answer asks again
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
