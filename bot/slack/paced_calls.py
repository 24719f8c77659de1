"""Web API calls that spend the workspace's shared budget for their method first, so Slack never answers 429."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.call_windows import FairCallWindows
from bot.core.ports import Allowance
from bot.slack.pacing import PROMISE_TTL_S, Pacing, allowance

log = logging.getLogger(__name__)


@dataclass
class PacedCalls:
    """One conversation's calls (a channel of one workspace), each after its turn in the shared windows."""

    client: AsyncWebClient
    windows: FairCallWindows
    pacing: Pacing
    workspace_id: str
    channel_id: str

    async def post(self, *, taken: bool = False, **kwargs: Any) -> Any:
        """chat.postMessage, in turn for the channel's and the workspace's allowances (unless already `taken`)."""
        allowances = self.pacing.posts(self.workspace_id, self.channel_id)
        if not taken:
            await self.windows.take(allowances)
        return await self.call("chat_postMessage", allowances, channel=self.channel_id, **kwargs)

    async def edit(self, *, settle: Sequence[str] = (), spent: Sequence[float] = (), **kwargs: Any) -> Any:
        """A necessary chat.update (a final text, a settled approval), in turn; `settle` names its promises, `spent`
        when earlier promised edits were made without asking (see CallWindows.take)."""
        allowances = [self.pacing.edits(self.workspace_id)]
        await self.windows.take(allowances, settle=settle, spent=spent)
        return await self.call("chat_update", allowances, channel=self.channel_id, **kwargs)

    async def edit_taken(self, **kwargs: Any) -> Any:
        """A chat.update whose call is already accounted for (may_edit took it, or a promise holds it)."""
        allowances = [self.pacing.edits(self.workspace_id)]
        return await self.call("chat_update", allowances, channel=self.channel_id, **kwargs)

    async def may_edit(self, keep: int) -> bool:
        """Whether an optional chat.update (an interim rendering) may go now; it is then taken from the budget."""
        return await self.windows.try_take([self.pacing.edits(self.workspace_id)], keep=keep)

    async def promise_edits(self, members: Sequence[str], keep: int, *, with_post: bool = False) -> bool:
        """Set edits aside for an answer about to show itself; False when the workspace cannot spare them. With
        `with_post`, a chat.postMessage is taken in the same question (for a placeholder: post(taken=True))."""
        edits = self.pacing.edits(self.workspace_id)
        now = self.pacing.posts(self.workspace_id, self.channel_id) if with_post else []
        return await self.windows.promise(edits, members, keep=keep, ttl_s=PROMISE_TTL_S, now=now)

    async def release_edits(self, members: Sequence[str]) -> None:
        if members:
            await self.windows.release(self.pacing.edits(self.workspace_id), members)

    async def spend(self, method: str, **kwargs: Any) -> Any:
        """Any other method with a workspace-wide allowance (bot/slack/pacing.py), in turn."""
        allowances = [allowance(method, self.workspace_id)]
        await self.windows.take(allowances)
        return await self.call(method.replace(".", "_"), allowances, **kwargs)

    async def call(self, method: str, allowances: Sequence[Allowance], **kwargs: Any) -> Any:
        """Call the Web API; should Slack still say 429 (its limits moved, or another app shares the token), every
        caller of the method in the workspace holds off for its Retry-After and this call goes again in turn."""
        while True:
            try:
                return await getattr(self.client, method)(**kwargs)
            except SlackApiError as error:
                if error.response.status_code != 429:
                    raise
                retry_after = float(error.response.headers.get("Retry-After", "1") or 1)
                log.warning("%s rate limited; holding off %.0f s", method, retry_after)
                for each in allowances:
                    await self.windows.hold_off(each, retry_after)
                await self.windows.take(allowances)
