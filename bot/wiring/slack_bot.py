"""The Slack half of the composition root: the Bolt app, its clients and stores, and the running bot's lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.core import texts
from bot.core.access import AccessPolicy
from bot.core.answers import Answers
from bot.core.assistant import AssistantPane
from bot.core.call_windows import FairCallWindows
from bot.core.channel_personas import ChannelPersonas
from bot.core.replies import Replies
from bot.core.workspaces import WorkspaceRetention
from bot.settings import Settings
from bot.slack.app import build_app, web_client
from bot.slack.deps import SlackDeps
from bot.slack.directory import Directory
from bot.slack.files import SlackFileFetcher, SlackFileSource
from bot.slack.mrkdwn import SLACK_FORMATTING
from bot.slack.notify import SlackAdminNotifier
from bot.slack.oauth import MANIFEST_BOT_SCOPES, STATE_EXPIRATION_S, OAuthConfig, authorize_url_for
from bot.slack.reader import SlackConversationReader
from bot.slack.recovery import AnswerRecovery
from bot.slack.reply_stream import RenderConfig
from bot.slack.workspaces import (
    InstalledWorkspaces,
    SerializedTokenRotator,
    SingleWorkspace,
    WorkspaceClients,
    own_workspace,
)
from bot.storage.answer_store import RedisAnswerStore, RedisPaneContexts
from bot.storage.call_windows import RedisCallWindows
from bot.storage.installations import RedisInstallationStore, RedisInstallRate, RedisOAuthStateStore
from bot.storage.redis_store import RedisStore
from bot.storage.token_crypto import TokenCipher
from bot.storage.workspace_data import RedisWorkspacePurges
from bot.wiring.core import HISTORY_FLUSH_TIMEOUT_S, Core, build_core

log = logging.getLogger(__name__)

# A token refresh is one Web API call; waiting longer than this for another process's means something is stuck.
TOKEN_REFRESH_WAIT_S = 15.0
BACKGROUND_STOP_S = 5.0  # how long shutdown waits for background work's current call


def oauth_config(
    settings: Settings, store: RedisStore, client: AsyncWebClient, *, on_installed: Callable[[str], Awaitable[None]]
) -> tuple[OAuthConfig, RedisInstallationStore]:
    """The install flow's settings and Redis stores; tokens are refreshed under a per-workspace Redis lock."""
    assert settings.slack_client_id and settings.slack_client_secret and settings.token_encryption_key  # check_slack
    cipher = TokenCipher.from_setting(settings.token_encryption_key.get_secret_value())
    installations = RedisInstallationStore(store.client, store.keys, cipher=cipher)

    def token_lock(workspace: str) -> contextlib.AbstractAsyncContextManager[None]:
        name = store.keys.token_refresh_lock(workspace)
        return store.leased_lock(name, wait_s=TOKEN_REFRESH_WAIT_S, busy=texts.TOKEN_REFRESH_BUSY)

    client_secret = settings.slack_client_secret.get_secret_value()
    config = OAuthConfig(
        client_id=settings.slack_client_id,
        client_secret=client_secret,
        scopes=settings.bot_scopes(MANIFEST_BOT_SCOPES),
        redirect_uri=settings.slack_redirect_uri,
        authorize_url=authorize_url_for(settings.slack_api_url),
        installations=installations,
        states=RedisOAuthStateStore(
            store.client, store.keys, expiration_s=STATE_EXPIRATION_S, max_live=settings.install_max_states
        ),
        rotator=SerializedTokenRotator(
            client_id=settings.slack_client_id,
            client_secret=client_secret,
            client=client,
            installations=installations,
            lock=token_lock,
        ),
        on_installed=on_installed,
    )
    return config, installations


@dataclass
class Bot:
    """Everything a running Slack bot owns, so it can be closed in one place."""

    core: Core
    app: AsyncApp
    replies: Replies
    slack_deps: SlackDeps
    files: SlackFileSource
    workspaces: WorkspaceClients
    retention: WorkspaceRetention
    single_workspace: bool
    _background: list[asyncio.Task[None]] = field(default_factory=list)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    slack_http: aiohttp.ClientSession | None = None  # closed with the bot
    install_limits: RedisInstallRate | None = None  # OAuth mode: GET /slack/install visits per client address

    @property
    def store(self) -> RedisStore:
        return self.core.store

    async def start(self) -> None:
        await self.core.start()
        self.core.workspace_settings.start()  # hears settings changed through other processes
        if self.single_workspace:
            self._background.append(asyncio.create_task(self._own_workspace_is_back()))
        self._background.append(asyncio.create_task(self.retention.run(self._stopping)))
        recovery = AnswerRecovery(self.slack_deps, self.workspaces, self.store)  # answers left by dead processes
        self._background.append(asyncio.create_task(recovery.run(self._stopping), name="answer-recovery"))

    async def _own_workspace_is_back(self) -> None:
        """A single-token bot that starts is installed: its workspace keeps its data even after an uninstall.

        In the background, so a slow Slack or Redis never holds up start-up."""
        try:
            await self.retention.returned(await own_workspace(self.app.client))
        except Exception as error:  # a failed check must never stop the bot; the purge stays scheduled
            log.warning("could not check whether this workspace's data was due for deletion: %s", type(error).__name__)

    async def stop_work(self, grace_s: float) -> None:
        """Turn new work away, let answers finish within `grace_s` (the rest end with a note), flush history saves."""
        in_progress = self.slack_deps.in_progress
        in_progress.stop_accepting()
        if len(in_progress):
            log.info("waiting up to %g s for %d answers in progress", grace_s, len(in_progress))
        await in_progress.finish(grace_s)
        await self.replies.drain(timeout_s=HISTORY_FLUSH_TIMEOUT_S)

    async def close(self, *, grace_s: float = 30.0) -> None:
        """Stop background work and answers (see `stop_work`), then close clients and the embedded Redis."""
        self._stopping.set()
        if self._background:
            # Let them finish their current call (cancelling one mid-command would leak its Redis connection).
            _, stuck = await asyncio.wait(self._background, timeout=BACKGROUND_STOP_S)
            for task in stuck:
                task.cancel()
            await asyncio.gather(*self._background, return_exceptions=True)
        await self.stop_work(grace_s)
        await self.slack_deps.answers.close()  # its Stop watcher: after the answers, before Redis closes
        await self.files.close()
        if self.slack_http is not None:
            await self.slack_http.close()
        await self.core.close()


def build_bot(settings: Settings) -> Bot:
    settings.check_slack()
    core = build_core(settings)
    retention = WorkspaceRetention(
        RedisWorkspacePurges(core.store.client, core.store.keys), grace_s=settings.uninstall_data_grace_s
    )
    slack_http = slack_web_session()
    client, oauth, workspaces = _slack_clients(settings, core, slack_http, retention)
    extra_hosts = {h.strip() for h in settings.slack_file_hosts.split(",") if h.strip()}
    files = SlackFileSource(
        SlackFileFetcher(
            allowed_hosts=SlackFileFetcher.default_allowed_hosts(settings.slack_api_url) | extra_hosts,
            max_bytes=settings.max_file_bytes,
        ),
        workspaces,
    )
    deps = _slack_deps(settings, core, workspaces, files, oauth, retention)
    core.metrics.watch_answers_in_progress(lambda: len(deps.in_progress))
    signing_secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    app = build_app(client=client, signing_secret=signing_secret, deps=deps, oauth=oauth)
    limits = RedisInstallRate(core.store.client, core.store.keys, per_minute=settings.install_rate_per_minute)
    return Bot(
        core=core,
        app=app,
        replies=deps.replies,
        slack_deps=deps,
        files=files,
        workspaces=workspaces,
        retention=retention,
        single_workspace=not settings.oauth,
        slack_http=slack_http,
        install_limits=limits if settings.oauth else None,
    )


def _slack_clients(
    settings: Settings, core: Core, session: aiohttp.ClientSession, retention: WorkspaceRetention
) -> tuple[AsyncWebClient, OAuthConfig | None, WorkspaceClients]:
    """The app's Web API client and how each workspace's client is found: installed ones (OAuth) or the one token."""
    if settings.oauth:
        # No token: each request gets its workspace's.
        client = web_client(token=None, base_url=settings.slack_api_url, metrics=core.metrics, session=session)
        oauth, installations = oauth_config(settings, core.store, client, on_installed=retention.returned)
        return client, oauth, InstalledWorkspaces(installations, oauth.rotator, base_url=settings.slack_api_url)
    assert settings.slack_bot_token is not None  # check_slack guarantees it; narrows the type
    token = settings.slack_bot_token.get_secret_value()
    client = web_client(token=token, base_url=settings.slack_api_url, metrics=core.metrics, session=session)
    return client, None, SingleWorkspace(client)


def _slack_deps(
    settings: Settings,
    core: Core,
    workspaces: WorkspaceClients,
    files: SlackFileSource,
    oauth: OAuthConfig | None,
    retention: WorkspaceRetention,
) -> SlackDeps:
    """What the Slack layer may use: the use cases, their stores and the workspace's rules."""
    cost_admins = settings.id_list(settings.cost_admins)
    metering = core.metering(SlackAdminNotifier(workspaces, cost_admins))
    keys, ttl_s = core.store.keys, settings.conversation_ttl_s
    answer_store = RedisAnswerStore(core.store.client, keys, record_ttl_s=ttl_s)
    answers = Answers(answer_store, signals=answer_store)
    replies = core.replies(SLACK_FORMATTING, files, SlackConversationReader(workspaces), metering, answers)
    channel_personas = ChannelPersonas(core.personas, core.workspace_settings)
    windows = FairCallWindows(RedisCallWindows(core.store.client, keys))
    return SlackDeps(
        replies=replies,
        ledger=core.store,
        budget=windows,
        render=RenderConfig(
            edit_interval_s=settings.edit_interval_s,
            edits_per_minute=settings.workspace_edits_per_minute,
            posts_per_minute=settings.workspace_posts_per_minute,
            max_message_chars=settings.max_message_chars,
        ),
        directory=Directory(core.store, windows),
        channel_personas=channel_personas,
        persona_change=settings.persona_change,
        tools=core.tools,
        approvals=core.store,
        files=files,
        usage=core.usage,
        metering=metering,
        budgets=core.workspace_settings,
        clock=lambda: datetime.now(UTC),
        retention=retention,
        installations=oauth.installations if oauth is not None else None,
        access=AccessPolicy(
            allowed_channels=settings.id_list(settings.allowed_channels),
            allowed_users=settings.id_list(settings.allowed_users),
            denied_users=settings.id_list(settings.denied_users),
        ),
        cost_admins=cost_admins,
        metrics=core.metrics,
        answers=answers,
        pane=AssistantPane(channel_personas, RedisPaneContexts(core.store.client, keys, ttl_s=ttl_s)),
        native_streaming=settings.slack_native_streaming,
    )


def slack_web_session() -> aiohttp.ClientSession:
    """One keep-alive connection pool for every Web API call (Bolt hands it on to the client it builds per request).

    Without it slack_sdk opens and closes a new session, so a new TCP and TLS connection to Slack, for every call:
    four or five per answer. The 30 s total timeout is the one slack_sdk applies to the sessions it opens itself.
    Needs a running event loop, as build_bot always has.
    """
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30), cookie_jar=aiohttp.DummyCookieJar())
