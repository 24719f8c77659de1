"""Composition root: turns Settings into clients, stores, services and the Bolt app. The one place that knows all."""

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

from bot import i18n, logs
from bot.core import texts
from bot.core.access import AccessPolicy
from bot.core.answers import Answers
from bot.core.assistant import AssistantPane
from bot.core.attachments import Attachments
from bot.core.breaker import BreakerPolicy
from bot.core.call_windows import FairCallWindows
from bot.core.channel_personas import ChannelPersonas
from bot.core.context_window import ContextPolicy, ContextWindow
from bot.core.metering import AdminNotifier, BudgetPolicy, Metering
from bot.core.personas import PersonaCatalog
from bot.core.ports import FileSource
from bot.core.prompts import ReplyConfig
from bot.core.replies import Replies
from bot.core.thinking import ThinkingPlanner, ThinkingPolicy
from bot.core.tools.builtin import builtin_tools
from bot.core.tools.registry import ConversationReader, ToolRegistry
from bot.core.tools.runner import ToolRunner
from bot.core.usage import DEFAULT_PRICES, PriceTable
from bot.core.workspaces import WorkspaceRetention
from bot.llm.claude import ClaudeModel
from bot.llm.failover import FailoverModel, build_model
from bot.mcp_tools import McpTools, load_mcp_config
from bot.media.preparer import PillowMediaPreparer
from bot.metrics import Metrics
from bot.settings import Settings, SettingsError
from bot.slack.app import build_app, web_client
from bot.slack.deps import SlackDeps
from bot.slack.directory import Directory
from bot.slack.files import SlackFileFetcher, SlackFileSource
from bot.slack.notify import SlackAdminNotifier
from bot.slack.oauth import MANIFEST_BOT_SCOPES, STATE_EXPIRATION_S, OAuthConfig, authorize_url_for
from bot.slack.reader import SlackConversationReader
from bot.slack.reply_stream import SLACK_FORMATTING, RenderConfig
from bot.slack.workspaces import (
    InstalledWorkspaces,
    SerializedTokenRotator,
    SingleWorkspace,
    WorkspaceClients,
    own_workspace,
)
from bot.storage import redis_store
from bot.storage.answer_store import RedisAnswerStore, RedisPaneContexts
from bot.storage.breaker import RedisCircuitBreaker
from bot.storage.call_windows import RedisCallWindows
from bot.storage.embedded import EmbeddedRedis
from bot.storage.installations import RedisInstallationStore, RedisInstallRate, RedisOAuthStateStore
from bot.storage.keys import Keys, UsageKeys
from bot.storage.persona_files import builtin_personas_dir, load_personas
from bot.storage.redis_store import RedisStore
from bot.storage.token_crypto import TokenCipher
from bot.storage.usage_ledger import RedisUsageLedger
from bot.storage.workspace_data import RedisWorkspacePurges
from bot.web.fetch import SafeWebFetcher

log = logging.getLogger(__name__)

# On shutdown, answers already shown get this long to reach history if Redis is having a blip.
HISTORY_FLUSH_TIMEOUT_S = 10.0
# A token refresh is one Web API call; waiting longer than this for another process's means something is stuck.
TOKEN_REFRESH_WAIT_S = 15.0
BACKGROUND_STOP_S = 5.0  # how long shutdown waits for background work's current call


@dataclass
class Core:
    """The Slack-free part of the bot: what the terminal chat runs too."""

    settings: Settings
    store: RedisStore
    model: ClaudeModel | FailoverModel
    personas: PersonaCatalog
    tools: ToolRegistry
    web: SafeWebFetcher | None
    mcp: McpTools | None
    usage: RedisUsageLedger
    prices: PriceTable
    metrics: Metrics
    embedded_redis: EmbeddedRedis | None = field(default=None)

    async def start(self) -> None:
        """Connect to MCP servers (a failing one is reported and skipped) and offer their tools to Claude."""
        if self.mcp is None:
            return
        for problem in await self.mcp.start():
            log.warning("%s", problem)
        for tool in self.mcp.tools():
            self.tools.register(tool)

    def metering(self, notifier: AdminNotifier | None = None) -> Metering:
        settings = self.settings
        policy = BudgetPolicy(
            month_usd=settings.budget_month_usd,
            user_day_usd=settings.budget_user_day_usd,
            fallback_model=settings.budget_fallback_model,
        )
        return Metering(self.usage, self.prices, policy, notifier=notifier, budget_store=self.store)

    def replies(
        self,
        format_instructions: str,
        files: FileSource | None = None,
        reader: ConversationReader | None = None,
        metering: Metering | None = None,
        answers: Answers | None = None,
    ) -> Replies:
        settings = self.settings
        fallbacks = (settings.claude_fallback_model,) if settings.claude_fallback_model else ()
        config = ReplyConfig(
            model=settings.claude_model,
            max_tokens=settings.claude_max_tokens,
            fallback_models=fallbacks,
            format_instructions=format_instructions,
            web_search=settings.web_search_enabled,
        )
        attachments = None
        if files is not None:
            attachments = Attachments(
                files,
                PillowMediaPreparer(settings.image_decode_concurrency),
                self.store,
                max_media_per_request=settings.max_images_per_thread,
            )
        return Replies(
            self.model,
            self.store,
            config,
            self.personas,
            self.store,
            attachments=attachments,
            tools=ToolRunner(
                self.tools,
                self.store,
                approval_timeout_s=settings.tool_approval_timeout_s,
                timeout_cap_s=settings.tool_timeout_s,
            ),
            reader=reader,
            web=self.web,
            max_tool_rounds=settings.max_tool_rounds,
            metering=metering or self.metering(),
            context=ContextWindow(
                ContextPolicy(
                    token_limit=settings.context_token_limit,
                    fold_at=settings.context_fold_at,
                    fold_to=min(0.4, settings.context_fold_at / 2),
                    keep_recent_turns=settings.context_keep_recent_turns,
                ),
                catalog=self.model,
                counter=self.model,
                summary_model=settings.claude_fast_model,
            ),
            thinking=ThinkingPlanner(
                ThinkingPolicy(
                    default=settings.thinking,
                    triage_model=settings.claude_fast_model,
                    medium_budget=settings.thinking_medium_budget,
                    large_budget=settings.thinking_large_budget,
                    log_thinking=settings.log_thinking,
                )
            ),
            storage_wait_s=settings.storage_wait_s,
            answers=answers,
        )

    async def close(self) -> None:
        if self.mcp is not None:
            await self.mcp.close()
        if self.web is not None:
            await self.web.close()
        await self.model.close()
        await self.store.close()
        if self.embedded_redis is not None:
            self.embedded_redis.close()


def load_persona_catalog(settings: Settings) -> PersonaCatalog:
    """A broken persona file is reported by name and skipped; the bot starts with the others."""
    folders = [builtin_personas_dir()]
    if settings.personas_dir is not None:
        folders.append(settings.personas_dir)
    personas, problems = load_personas(*folders)
    for problem in problems:
        log.warning("persona file %s skipped: %s", problem.file, problem.problem)
    if not personas:
        where = "the shipped personas" + (" and PERSONAS_DIR" if settings.personas_dir is not None else "")
        raise SettingsError(f"no usable persona: every file in {where} is missing or broken (see the lines above)")
    catalog = PersonaCatalog(personas, default_name=settings.default_persona)
    if catalog.fallback_from:
        log.warning(
            "DEFAULT_PERSONA %r is not a known persona; using %r", settings.default_persona, catalog.default_name
        )
    log.info("personas: %s (default %s)", ", ".join(catalog.names()), catalog.default_name)
    return catalog


def build_core(settings: Settings, *, provider: str | None = None) -> Core:
    """`provider` (chat --provider) talks through that one provider instead of the CLAUDE_PROVIDERS chain."""
    logs.add_secrets(settings.secret_values())  # redacted by value from the first log line on
    i18n.install(settings.default_locale)
    metrics = Metrics()
    embedded = None
    if settings.redis_url is None:
        embedded = EmbeddedRedis(settings.data_dir)
        redis_url = embedded.url
    else:
        redis_url = settings.redis_url.get_secret_value()
        kind = "Redis Cluster, seed node" if settings.redis_cluster else "Redis"
        log.info("%s at %s", kind, redis_store.public_location(redis_url))
    store = RedisStore(
        redis_store.connect(redis_url, tls_ca_file=settings.redis_tls_ca_file, cluster=settings.redis_cluster),
        Keys(settings.redis_key_prefix, hash_tags=settings.redis_cluster),
        conversation_ttl_s=settings.conversation_ttl_s,
        dm_idle_reset_s=settings.dm_idle_reset_s,
        dedup_ttl_s=settings.event_dedup_ttl_s,
        profile_ttl_s=settings.profile_cache_ttl_s,
        lock_lease_s=settings.thread_lease_s,
    )
    policy = BreakerPolicy(settings.provider_failure_threshold, settings.provider_cooldown_s)
    breaker = RedisCircuitBreaker(store.client, store.keys, policy)
    model = build_model(
        settings, breaker, on_error=metrics.claude_error, on_failover=metrics.claude_failover, only=provider
    )
    web = None
    if settings.fetch_url_enabled:
        allow = [h.strip() for h in settings.fetch_url_allow_hosts.split(",") if h.strip()]
        web = SafeWebFetcher(allow_hosts=allow)
    mcp = None
    if settings.mcp_config is not None:
        servers, problems = load_mcp_config(settings.mcp_config)
        for problem in problems:
            log.warning("MCP config: %s", problem)
        mcp = McpTools(servers)
    tools = ToolRegistry(builtin_tools(web_fetch=web is not None))
    usage = RedisUsageLedger(
        store.client,
        UsageKeys(settings.redis_key_prefix, hash_tags=settings.redis_cluster),
        raw_retention_days=settings.usage_raw_retention_days,
        on_record=metrics.usage_recorded,
    )
    prices = (
        PriceTable.from_setting(settings.price_overrides)
        if settings.price_overrides.strip()
        else PriceTable(DEFAULT_PRICES)
    )
    personas = load_persona_catalog(settings)
    return Core(settings, store, model, personas, tools, web, mcp, usage, prices, metrics, embedded)


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
        if self.single_workspace:
            self._background.append(asyncio.create_task(self._own_workspace_is_back()))
        self._background.append(asyncio.create_task(self.retention.run(self._stopping)))

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
    oauth = None
    slack_http = slack_web_session()
    if settings.oauth:
        # No token: each request gets its workspace's.
        client = web_client(token=None, base_url=settings.slack_api_url, metrics=core.metrics, session=slack_http)
        oauth, installations = oauth_config(settings, core.store, client, on_installed=retention.returned)
        workspaces: WorkspaceClients = InstalledWorkspaces(
            installations, oauth.rotator, base_url=settings.slack_api_url
        )
    else:
        assert settings.slack_bot_token is not None  # check_slack guarantees it; narrows the type
        client = web_client(
            token=settings.slack_bot_token.get_secret_value(),
            base_url=settings.slack_api_url,
            metrics=core.metrics,
            session=slack_http,
        )
        workspaces = SingleWorkspace(client)
    extra_hosts = {h.strip() for h in settings.slack_file_hosts.split(",") if h.strip()}
    files = SlackFileSource(
        SlackFileFetcher(
            allowed_hosts=SlackFileFetcher.default_allowed_hosts(settings.slack_api_url) | extra_hosts,
            max_bytes=settings.max_file_bytes,
        ),
        workspaces,
    )
    cost_admins = settings.id_list(settings.cost_admins)
    metering = core.metering(SlackAdminNotifier(workspaces, cost_admins))
    keys, ttl_s = core.store.keys, settings.conversation_ttl_s
    answer_store = RedisAnswerStore(core.store.client, keys, record_ttl_s=ttl_s)
    answers = Answers(answer_store, signals=answer_store)
    replies = core.replies(SLACK_FORMATTING, files, SlackConversationReader(workspaces), metering, answers)
    channel_personas = ChannelPersonas(core.personas, core.store)
    windows = FairCallWindows(RedisCallWindows(core.store.client, keys))
    deps = SlackDeps(
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
        budgets=core.store,
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
    core.metrics.watch_answers_in_progress(lambda: len(deps.in_progress))
    signing_secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    app = build_app(client=client, signing_secret=signing_secret, deps=deps, oauth=oauth)
    limits = RedisInstallRate(core.store.client, core.store.keys, per_minute=settings.install_rate_per_minute)
    return Bot(
        core=core,
        app=app,
        replies=replies,
        slack_deps=deps,
        files=files,
        workspaces=workspaces,
        retention=retention,
        single_workspace=not settings.oauth,
        slack_http=slack_http,
        install_limits=limits if settings.oauth else None,
    )


def slack_web_session() -> aiohttp.ClientSession:
    """One keep-alive connection pool for every Web API call (Bolt hands it on to the client it builds per request).

    Without it slack_sdk opens and closes a new session, so a new TCP and TLS connection to Slack, for every call:
    four or five per answer. The 30 s total timeout is the one slack_sdk applies to the sessions it opens itself.
    Needs a running event loop, as build_bot always has.
    """
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30), cookie_jar=aiohttp.DummyCookieJar())
