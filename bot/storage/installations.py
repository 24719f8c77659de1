"""Slack installations and OAuth states in Redis, behind the slack_sdk store interfaces Bolt's OAuth flow calls.

This is the one storage module that imports slack_sdk: the interfaces and their value types (Installation, Bot) are
slack_sdk's, and Bolt calls them directly. It stays here, beside the other Redis adapters, because what it owns is
how those values are kept in Redis; it never calls Slack.

One hash per workspace (`Keys.installation`, keyed by `bot.core.workspaces.workspace_id`, so an org-wide install is
kept under its enterprise id): field `latest` is the latest installation, `user:<id>` each installing user's, and
`bot` the bot token with its refresh token and expiry. Reads merge `bot` into the installation, so a rotated or
deleted bot token is never handed out from an older copy. Values are JSON of the objects' attributes, rebuilt with
their constructors (not `to_dict()`, which turns timestamps into datetimes and flattens custom values).
"""

from __future__ import annotations

import inspect
import json
import logging
import secrets
from typing import Any, TypeVar

import redis.asyncio as redis
from slack_sdk.oauth.installation_store import Bot, Installation
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore

from bot.core.workspaces import workspace_id
from bot.storage.keys import Keys
from bot.storage.redis_store import _translated

log = logging.getLogger(__name__)
T = TypeVar("T", Installation, Bot)

LATEST = "latest"
BOT = "bot"
_USER = "user:"
# The bot-side attributes a `bot` entry overrides in an installation read from the same hash.
_BOT_FIELDS = ("bot_token", "bot_id", "bot_user_id", "bot_scopes", "bot_refresh_token", "bot_token_expires_at")
MAX_STATE_CHARS = 200  # ours are 32; anything much longer is not one of ours


class RedisInstallationStore(AsyncInstallationStore):
    """Installations per workspace and org; implements every method Bolt's authorize and revocation paths call."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys

    @property
    def logger(self) -> logging.Logger:
        return log

    @_translated
    async def async_save(self, installation: Installation) -> None:
        """The latest installation, the installer's own copy, and (when there is one) the bot."""
        data = _dump(installation)
        fields: dict[Any, Any] = {LATEST: data, _USER + (installation.user_id or "-"): data}
        if installation.bot_token:
            fields[BOT] = _dump(installation.to_bot())
        await self._client.hset(
            self._key(installation.enterprise_id, installation.team_id, installation), mapping=fields
        )

    @_translated
    async def async_save_bot(self, bot: Bot) -> None:
        await self._client.hset(self._key(bot.enterprise_id, bot.team_id, bot), BOT, _dump(bot))

    @_translated
    async def async_find_bot(
        self, *, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None = False
    ) -> Bot | None:
        name = self._keys.installation(
            workspace_id(enterprise_id=enterprise_id, team_id=team_id, is_enterprise_install=is_enterprise_install)
        )
        return _load(Bot, await self._client.hget(name, BOT))

    @_translated
    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        workspace = workspace_id(
            enterprise_id=enterprise_id, team_id=team_id, is_enterprise_install=is_enterprise_install
        )
        return await self._find(workspace, LATEST if user_id is None else _USER + user_id)

    @_translated
    async def find_by_workspace(self, workspace: str) -> Installation | None:
        """The latest installation by our own workspace id, for work done outside a Slack request."""
        return await self._find(workspace, LATEST)

    async def _find(self, workspace: str, field: str) -> Installation | None:
        raw, raw_bot = await self._client.hmget(self._keys.installation(workspace), [field, BOT])
        installation = _load(Installation, raw)
        if installation is None:
            return None
        bot = _load(Bot, raw_bot)
        for attribute in _BOT_FIELDS:
            setattr(installation, attribute, getattr(bot, attribute) if bot is not None else None)
        return installation

    @_translated
    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self._client.hdel(self._delete_key(enterprise_id, team_id), BOT)

    @_translated
    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        """Without user_id every installation (the bot stays); with it, that person's, and `latest` if it is theirs."""
        name = self._delete_key(enterprise_id, team_id)
        if user_id is None:
            doomed = [field for field in await self._client.hkeys(name) if field != BOT]
        else:
            doomed = [_USER + user_id]
            latest = _load(Installation, await self._client.hget(name, LATEST))
            if latest is not None and latest.user_id == user_id:
                doomed.append(LATEST)
        if doomed:
            await self._client.hdel(name, *doomed)

    @_translated
    async def async_delete_all(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self._client.delete(self._delete_key(enterprise_id, team_id))

    def _key(self, enterprise_id: str | None, team_id: str | None, value: Installation | Bot) -> str:
        return self._keys.installation(
            workspace_id(
                enterprise_id=enterprise_id, team_id=team_id, is_enterprise_install=value.is_enterprise_install
            )
        )

    def _delete_key(self, enterprise_id: str | None, team_id: str | None) -> str:
        """Deletes carry no is_enterprise_install: callers pass team_id=None for an org-wide install."""
        return self._keys.installation(
            workspace_id(enterprise_id=enterprise_id, team_id=team_id, is_enterprise_install=team_id is None)
        )


class RedisOAuthStateStore(AsyncOAuthStateStore):
    """OAuth `state` values: random, single use (consuming deletes), and gone after `expiration_s`."""

    def __init__(self, client: redis.Redis, keys: Keys, *, expiration_s: int) -> None:
        self._client = client
        self._keys = keys
        self._expiration_s = expiration_s

    @property
    def logger(self) -> logging.Logger:
        return log

    @_translated
    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        state = secrets.token_urlsafe(24)
        await self._client.set(self._keys.oauth_state(state), "1", ex=self._expiration_s)
        return state

    @_translated
    async def async_consume(self, state: str) -> bool:
        """True once per issued state: DEL is atomic, so a replayed or concurrent second use finds nothing."""
        if not state or len(state) > MAX_STATE_CHARS:
            return False
        return bool(await self._client.delete(self._keys.oauth_state(state)))


def _dump(value: Installation | Bot) -> str:
    return json.dumps(vars(value), separators=(",", ":"))


def _load(kind: type[T], raw: str | bytes | None) -> T | None:
    """Rebuild from stored attributes; ones this slack_sdk version does not know are dropped, not fatal."""
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        accepted = inspect.signature(kind.__init__).parameters
        return kind(**{name: value for name, value in data.items() if name in accepted})
    except (ValueError, TypeError):
        log.warning("skipping an unreadable stored %s", kind.__name__)
        return None
