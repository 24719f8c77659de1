"""Each workspace's own bot token, for Web API calls made outside a Slack request (tools, file downloads, admin DMs,
the weekly summary). Inside a request Bolt's authorize has already put the right token on the listener's `client`.

Token rotation (Slack apps with `token_rotation_enabled`): a bot token lives 12 hours and is refreshed with its
refresh token, which Slack revokes once used. So a refresh runs under a per-workspace lock shared by every bot process,
and whoever gets the lock second re-reads the installation and uses the token the first one stored.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from slack_sdk.oauth.installation_store import Bot, Installation
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.token_rotation.async_rotator import AsyncTokenRotator
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.errors import BotError
from bot.core.workspaces import workspace_id

# Refresh a rotating token this long before it expires (Bolt's default: 120 minutes).
REFRESH_BEFORE_MINUTES = 120

WorkspaceLock = Callable[[str], AbstractAsyncContextManager[None]]


class WorkspaceNotInstalled(BotError):
    """No installation (or no bot token) is stored for the workspace: it uninstalled the app, or never installed it."""

    def __init__(self) -> None:
        super().__init__("I'm not installed in that workspace any more, so I can't reach it.")


class WorkspaceClients(Protocol):
    """The Web API as one workspace's bot."""

    async def token(self, workspace_id: str) -> str:
        """That workspace's bot token (refreshed if it rotates); raises WorkspaceNotInstalled."""
        ...

    async def client(self, workspace_id: str) -> AsyncWebClient: ...


class SingleWorkspace:
    """SLACK_BOT_TOKEN mode: one token serves every workspace id the bot sees (only its own, in practice)."""

    def __init__(self, client: AsyncWebClient) -> None:
        if not client.token:
            raise ValueError("SingleWorkspace needs a client with a bot token")
        self._client = client
        self._token = client.token

    async def token(self, workspace_id: str) -> str:
        return self._token

    async def client(self, workspace_id: str) -> AsyncWebClient:
        return self._client


async def own_workspace(client: AsyncWebClient) -> str:
    """The workspace id a single bot token belongs to (auth.test)."""
    identity = await client.auth_test()
    return workspace_id(
        enterprise_id=identity.get("enterprise_id"),
        team_id=identity.get("team_id"),
        is_enterprise_install=identity.get("is_enterprise_install"),
    )


class InstallationsByWorkspace(Protocol):
    async def find_by_workspace(self, workspace: str) -> Installation | None: ...


class InstalledWorkspaces:
    """OAuth mode: the token from the workspace's stored installation, refreshed (and stored) by the serialized
    rotator."""

    def __init__(
        self, installations: InstallationsByWorkspace, rotator: SerializedTokenRotator, *, base_url: str
    ) -> None:
        self._installations = installations
        self._rotator = rotator
        self._base_url = base_url

    async def token(self, workspace_id: str) -> str:
        installation = await self._installations.find_by_workspace(workspace_id)
        if installation is None or not installation.bot_token:
            raise WorkspaceNotInstalled()
        refreshed = await self._rotator.perform_token_rotation(
            installation=installation, minutes_before_expiration=REFRESH_BEFORE_MINUTES
        )
        if refreshed is None:
            return installation.bot_token
        return refreshed.bot_token or installation.bot_token  # the rotator stored it before releasing its lock

    async def client(self, workspace_id: str) -> AsyncWebClient:
        return AsyncWebClient(token=await self.token(workspace_id), base_url=self._base_url)


def _expiring(expires_at: int | None, minutes_before_expiration: int) -> bool:
    return expires_at is not None and expires_at <= time.time() + minutes_before_expiration * 60


class SerializedTokenRotator(AsyncTokenRotator):
    """Bolt's token rotator, one refresh per workspace at a time across processes (see the module docstring).

    Under the lock the installation (or bot) is read again and refreshed from that copy, and the refreshed one is
    saved before the lock is released: Slack revokes a refresh token once used, so a process that got the lock
    second must find the new tokens already stored, never the spent refresh token. What it returns is what the
    caller should use (Bolt saves it once more, harmlessly: the same values).
    """

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        client: AsyncWebClient,
        installations: AsyncInstallationStore,
        lock: WorkspaceLock,
    ) -> None:
        super().__init__(client_id=client_id, client_secret=client_secret, client=client)
        # The plain rotator does the refreshing: calling our own overrides from inside the lock would deadlock.
        self._plain = AsyncTokenRotator(client_id=client_id, client_secret=client_secret, client=client)
        self._installations = installations
        self._lock = lock

    async def perform_token_rotation(
        self, *, installation: Installation, minutes_before_expiration: int = REFRESH_BEFORE_MINUTES
    ) -> Installation | None:
        if not (
            _expiring(installation.bot_token_expires_at, minutes_before_expiration)
            or _expiring(installation.user_token_expires_at, minutes_before_expiration)
        ):
            return None
        async with self._lock(_workspace_of(installation)):
            # The stored copy, which another process may have refreshed while we waited: its refresh tokens are
            # the only ones Slack still accepts.
            current = (
                await self._installations.async_find_installation(
                    enterprise_id=installation.enterprise_id,
                    team_id=installation.team_id,
                    user_id=installation.user_id,
                    is_enterprise_install=installation.is_enterprise_install,
                )
                or installation
            )
            refreshed = await self._plain.perform_token_rotation(
                installation=current, minutes_before_expiration=minutes_before_expiration
            )
            if refreshed is None:
                return current  # already refreshed elsewhere
            await self._installations.async_save(refreshed)
            return refreshed

    async def perform_bot_token_rotation(
        self, *, bot: Bot, minutes_before_expiration: int = REFRESH_BEFORE_MINUTES
    ) -> Bot | None:
        if not _expiring(bot.bot_token_expires_at, minutes_before_expiration):
            return None
        async with self._lock(_workspace_of(bot)):
            stored = await self._installations.async_find_bot(
                enterprise_id=bot.enterprise_id, team_id=bot.team_id, is_enterprise_install=bot.is_enterprise_install
            )
            current = stored or bot
            refreshed = await self._plain.perform_bot_token_rotation(
                bot=current, minutes_before_expiration=minutes_before_expiration
            )
            if refreshed is None:
                return current
            await self._installations.async_save_bot(refreshed)
            return refreshed


def _workspace_of(value: Installation | Bot) -> str:
    return workspace_id(
        enterprise_id=value.enterprise_id, team_id=value.team_id, is_enterprise_install=value.is_enterprise_install
    )
