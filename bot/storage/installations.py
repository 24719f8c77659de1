"""Slack installations and OAuth states in Redis, behind the slack_sdk store interfaces Bolt's OAuth flow calls.

This is the one storage module that imports slack_sdk: the interfaces and their value types (Installation, Bot) are
slack_sdk's, and Bolt calls them directly. It stays here, beside the other Redis adapters, because what it owns is
how those values are kept in Redis; it never calls Slack.

One hash per workspace (`Keys.installation`, keyed by `bot.core.workspaces.workspace_id`, so an org-wide install is
kept under its enterprise id): field `latest` is the latest installation, `user:<id>` each installing user's, and
`bot` the bot token with its refresh token and expiry. Reads merge `bot` into the installation, so a rotated or
deleted bot token is never handed out from an older copy. Values are JSON of the objects' attributes, rebuilt with
their constructors (not `to_dict()`, which turns timestamps into datetimes and flattens custom values), encrypted
with TOKEN_ENCRYPTION_KEY (`token_crypto`). A plain-JSON record written before encryption, or one sealed with an
older key, is read once and rewritten encrypted with the current key.

Every token read or written is registered with the log redaction (`bot.logs.add_secrets`).
"""

from __future__ import annotations

import inspect
import json
import logging
import secrets
import time
from typing import Any, TypeVar

import redis.asyncio as redis
from slack_sdk.oauth.installation_store import Bot, Installation
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore

from bot import logs
from bot.core.workspaces import workspace_id
from bot.storage.keys import Keys
from bot.storage.redis_store import _translated
from bot.storage.token_crypto import TokenCipher, UndecryptableRecord

log = logging.getLogger(__name__)
T = TypeVar("T", Installation, Bot)

LATEST = "latest"
BOT = "bot"
_USER = "user:"
# The bot-side attributes a `bot` entry overrides in an installation read from the same hash.
_BOT_FIELDS = ("bot_token", "bot_id", "bot_user_id", "bot_scopes", "bot_refresh_token", "bot_token_expires_at")
MAX_STATE_CHARS = 200  # ours are 32; anything much longer is not one of ours
_TOKEN_FIELDS = ("bot_token", "bot_refresh_token", "user_token", "user_refresh_token")
# Rewrite a field only if it still holds what was read: a concurrent save of a newer token always wins.
_REPLACE_IF_UNCHANGED = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
end
return -1
"""


class TooManyInstallStates(Exception):
    """INSTALL_MAX_STATES OAuth states are live: someone is opening the install page far faster than people do."""


class RedisInstallationStore(AsyncInstallationStore):
    """Installations per workspace and org; implements every method Bolt's authorize and revocation paths call."""

    def __init__(self, client: redis.Redis, keys: Keys, *, cipher: TokenCipher) -> None:
        self._client = client
        self._keys = keys
        self._cipher = cipher

    @property
    def logger(self) -> logging.Logger:
        return log

    def _dump(self, value: Installation | Bot) -> str:
        logs.add_secrets(getattr(value, name, None) for name in _TOKEN_FIELDS)
        return self._cipher.encrypt(_dump(value))

    async def _load(self, kind: type[T], name: str, raw: str | bytes | None) -> T | None:
        """Decrypt and rebuild; unreadable records are skipped. A plain-JSON or old-key record makes the whole hash
        be re-encrypted with the current key (`_reseal`), so each is read in the clear at most once."""
        if raw is None:
            return None
        stored = raw.decode() if isinstance(raw, bytes) else raw
        try:
            plain, stale = self._cipher.decrypt(stored)
        except UndecryptableRecord:
            log.warning("skipping a stored %s that no TOKEN_ENCRYPTION_KEY opens", kind.__name__)
            return None
        value = _load(kind, plain)
        if value is not None:
            logs.add_secrets(getattr(value, attr, None) for attr in _TOKEN_FIELDS)
            if stale:
                try:
                    await self._reseal(name)
                except redis.RedisError as error:  # the read stands; the next one tries again
                    log.warning("could not re-encrypt stored installation records: %s", type(error).__name__)
        return value

    async def _reseal(self, name: str) -> None:
        """Rewrite every field of one workspace's hash that is plain JSON or sealed with an older key."""
        resealed = 0
        for field, stored in (await self._client.hgetall(name)).items():
            text = stored.decode() if isinstance(stored, bytes) else stored
            try:
                plain, stale = self._cipher.decrypt(text)
            except UndecryptableRecord:
                continue
            if stale:
                await self._client.eval(_REPLACE_IF_UNCHANGED, 1, name, field, text, self._cipher.encrypt(plain))
                resealed += 1
        if resealed:
            log.info("re-encrypted %d stored installation records with the current TOKEN_ENCRYPTION_KEY", resealed)

    @_translated
    async def async_save(self, installation: Installation) -> None:
        """The latest installation, the installer's own copy, and (when there is one) the bot."""
        data = self._dump(installation)
        fields: dict[Any, Any] = {LATEST: data, _USER + (installation.user_id or "-"): data}
        if installation.bot_token:
            fields[BOT] = self._dump(installation.to_bot())
        await self._client.hset(
            self._key(installation.enterprise_id, installation.team_id, installation), mapping=fields
        )

    @_translated
    async def async_save_bot(self, bot: Bot) -> None:
        await self._client.hset(self._key(bot.enterprise_id, bot.team_id, bot), BOT, self._dump(bot))

    @_translated
    async def async_find_bot(
        self, *, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None = False
    ) -> Bot | None:
        name = self._keys.installation(
            workspace_id(enterprise_id=enterprise_id, team_id=team_id, is_enterprise_install=is_enterprise_install)
        )
        return await self._load(Bot, name, await self._client.hget(name, BOT))

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
        name = self._keys.installation(workspace)
        raw, raw_bot = await self._client.hmget(name, [field, BOT])
        installation = await self._load(Installation, name, raw)
        if installation is None:
            return None
        bot = await self._load(Bot, name, raw_bot)
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
            latest = await self._load(Installation, name, await self._client.hget(name, LATEST))
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

    def __init__(self, client: redis.Redis, keys: Keys, *, expiration_s: int, max_live: int = 10_000) -> None:
        self._client = client
        self._keys = keys
        self._expiration_s = expiration_s
        self._max_live = max_live

    @property
    def logger(self) -> logging.Logger:
        return log

    @_translated
    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        """A new state, unless INSTALL_MAX_STATES are live (an index by expiry time counts them; may overshoot by
        the few issued at the same instant)."""
        now = time.time()
        live = self._keys.oauth_states_live()
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(live, "-inf", now)
            pipe.zcard(live)
            _, count = await pipe.execute()
        if count >= self._max_live:
            raise TooManyInstallStates()
        state = secrets.token_urlsafe(24)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.set(self._keys.oauth_state(state), "1", ex=self._expiration_s)
            pipe.zadd(live, {state: now + self._expiration_s})
            pipe.expire(live, self._expiration_s)
            await pipe.execute()
        return state

    @_translated
    async def async_consume(self, state: str) -> bool:
        """True once per issued state: DEL is atomic, so a replayed or concurrent second use finds nothing."""
        if not state or len(state) > MAX_STATE_CHARS:
            return False
        consumed = bool(await self._client.delete(self._keys.oauth_state(state)))
        if consumed:
            await self._client.zrem(self._keys.oauth_states_live(), state)
        return consumed


class RedisInstallRate:
    """At most `per_minute` GET /slack/install visits per client address per minute, counted in Redis so every
    process shares the count (fixed one-minute windows)."""

    def __init__(self, client: redis.Redis, keys: Keys, *, per_minute: int) -> None:
        self._client = client
        self._keys = keys
        self._per_minute = per_minute

    @_translated
    async def admit(self, address: str) -> str | None:
        minute = int(time.time() // 60)
        name = self._keys.install_rate(address, minute)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.expire(name, 120)
            count, _ = await pipe.execute()
        if int(count) > self._per_minute:
            log.info("install page: rate limit reached for one client address")
            return "Too many install attempts from your address; please wait a minute and try again."
        return None


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
