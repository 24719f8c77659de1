"""The core's ConversationReader over the Web API, reading only what the *asking person* can see.

The bot token can read every channel the bot is in; a person must not borrow that reach. Private channels, DMs
and group DMs are readable only when the asker is a member (conversations.members); public channels are open to
everyone in the workspace, so membership of the bot is enough there.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.tools.registry import ReadMessage, ToolError
from bot.slack.workspaces import WorkspaceClients, WorkspaceNotInstalled

log = logging.getLogger(__name__)

_NOT_A_MEMBER = "You are not a member of that conversation, so I can't read it for you."
_PRIVATE_ELSEWHERE = (
    "That conversation is private: I can only share what it says there, or with you in a direct message."
)


class SlackConversationReader:
    """Calls the Web API as the asking person's workspace's bot (its own token in a multi-workspace install)."""

    def __init__(self, workspaces: WorkspaceClients) -> None:
        self._workspaces = workspaces

    async def read_thread(
        self, workspace_id: str, channel_id: str, thread_ts: str, *, as_user: str, limit: int, shown_in: str
    ) -> list[ReadMessage]:
        client = await self._client(workspace_id)
        await self._check_visible(client, channel_id, as_user, shown_in=shown_in)
        response = await self._call(client, "conversations_replies", channel=channel_id, ts=thread_ts, limit=limit)
        return [_message(m) for m in response.get("messages", [])][-limit:]

    async def read_channel(
        self, workspace_id: str, channel_id: str, *, as_user: str, limit: int, shown_in: str
    ) -> list[ReadMessage]:
        client = await self._client(workspace_id)
        await self._check_visible(client, channel_id, as_user, shown_in=shown_in)
        response = await self._call(client, "conversations_history", channel=channel_id, limit=limit)
        return list(reversed([_message(m) for m in response.get("messages", [])]))  # oldest first, like a chat

    async def can_read(self, workspace_id: str, channel_id: str, *, as_user: str, shown_in: str) -> bool:
        """The same check as a read, without reading: history holding another conversation's text asks it."""
        try:
            client = await self._client(workspace_id)
            await self._check_visible(client, channel_id, as_user, shown_in=shown_in)
        except ToolError:
            return False
        return True

    async def post_message(self, workspace_id: str, channel_id: str, text: str, *, as_user: str) -> str:
        client = await self._client(workspace_id)
        await self._check_visible(client, channel_id, as_user, must_be_member=True)
        posted = await self._call(client, "chat_postMessage", channel=channel_id, text=text)
        try:
            link = await client.chat_getPermalink(channel=channel_id, message_ts=posted["ts"])
            return str(link.get("permalink") or posted["ts"])
        except SlackApiError:
            return str(posted["ts"])

    async def _client(self, workspace_id: str) -> AsyncWebClient:
        try:
            return await self._workspaces.client(workspace_id)
        except WorkspaceNotInstalled as error:
            raise ToolError(error.user_message) from None

    async def _check_visible(
        self,
        client: AsyncWebClient,
        channel_id: str,
        user_id: str,
        *,
        must_be_member: bool = False,
        shown_in: str | None = None,
    ) -> None:
        info = (await self._call(client, "conversations_info", channel=channel_id)).get("channel") or {}
        private = bool(info.get("is_private") or info.get("is_im") or info.get("is_mpim") or info.get("is_group"))
        # Guests and people from other organisations see only the channels they are in, public ones included.
        if (private or must_be_member or await self._is_guest(client, user_id)) and not await self._is_member(
            client, channel_id, user_id
        ):
            raise ToolError(_NOT_A_MEMBER)
        if private and shown_in is not None and shown_in != channel_id and not shown_in.startswith("D"):
            raise ToolError(_PRIVATE_ELSEWHERE)

    async def _is_guest(self, client: AsyncWebClient, user_id: str) -> bool:
        user = (await self._call(client, "users_info", user=user_id)).get("user") or {}
        return bool(user.get("is_restricted") or user.get("is_ultra_restricted") or user.get("is_stranger"))

    async def _is_member(self, client: AsyncWebClient, channel_id: str, user_id: str) -> bool:
        cursor = None
        for _ in range(50):  # 50 pages x 1000 members is plenty; stop rather than loop forever
            kwargs: dict[str, Any] = {"channel": channel_id, "limit": 1000}
            if cursor:
                kwargs["cursor"] = cursor
            response = await self._call(client, "conversations_members", **kwargs)
            if user_id in (response.get("members") or []):
                return True
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return False
        return False

    async def _call(self, client: AsyncWebClient, method: str, **kwargs: Any) -> Any:
        try:
            return await getattr(client, method)(**kwargs)
        except SlackApiError as error:
            code = error.response.get("error")
            log.info("%s refused: %s", method, code)
            if code in ("channel_not_found", "not_in_channel"):
                raise ToolError(
                    "I can't see that conversation: I'm not a member. Invite me with /invite @claude first."
                ) from None
            if code in ("thread_not_found", "message_not_found"):
                raise ToolError("That thread or message was not found.") from None
            raise ToolError(f"Slack refused the request ({code}).") from None


def _message(raw: dict[str, Any]) -> ReadMessage:
    return ReadMessage(
        author=str(raw.get("user") or raw.get("bot_id") or "unknown"),
        text=str(raw.get("text") or ""),
        ts=str(raw.get("ts") or ""),
        thread_replies=int(raw.get("reply_count") or 0),
    )
