"""Composition root: turns Settings into clients, stores, services and the Bolt app. The one place that knows all."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.access import AccessPolicy
from bot.core.attachments import Attachments
from bot.core.channel_personas import ChannelPersonas
from bot.core.fair_budget import FairRateBudget
from bot.core.metering import AdminNotifier, BudgetPolicy, Metering
from bot.core.personas import PersonaCatalog
from bot.core.ports import FileSource
from bot.core.prompts import ReplyConfig
from bot.core.replies import Replies
from bot.core.tools.builtin import builtin_tools
from bot.core.tools.registry import ConversationReader, ToolRegistry
from bot.core.tools.runner import ToolRunner
from bot.core.usage import DEFAULT_PRICES, PriceTable
from bot.llm.claude import ClaudeModel
from bot.mcp_tools import McpTools, load_mcp_config
from bot.media.preparer import PillowMediaPreparer
from bot.settings import Settings
from bot.slack.app import SlackDeps, build_app
from bot.slack.directory import Directory
from bot.slack.files import SlackFileFetcher, SlackFileSource
from bot.slack.notify import SlackAdminNotifier
from bot.slack.reader import SlackConversationReader
from bot.slack.reply_stream import SLACK_FORMATTING, RenderConfig
from bot.storage import redis_store
from bot.storage.embedded import EmbeddedRedis
from bot.storage.keys import Keys
from bot.storage.persona_files import builtin_personas_dir, load_personas
from bot.storage.redis_store import RedisStore
from bot.storage.usage_ledger import RedisUsageLedger
from bot.web.fetch import SafeWebFetcher

log = logging.getLogger(__name__)


@dataclass
class Core:
    """The Slack-free part of the bot: what the terminal chat runs too."""

    settings: Settings
    store: RedisStore
    model: ClaudeModel
    personas: PersonaCatalog
    tools: ToolRegistry
    web: SafeWebFetcher | None
    mcp: McpTools | None
    usage: RedisUsageLedger
    prices: PriceTable
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
                files, PillowMediaPreparer(), self.store, max_media_per_request=settings.max_images_per_thread
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
            storage_wait_s=settings.storage_wait_s,
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
    catalog = PersonaCatalog(personas, default_name=settings.default_persona)
    if catalog.fallback_from:
        log.warning(
            "DEFAULT_PERSONA %r is not a known persona; using %r", settings.default_persona, catalog.default_name
        )
    log.info("personas: %s (default %s)", ", ".join(catalog.names()), catalog.default_name)
    return catalog


def build_core(settings: Settings) -> Core:
    embedded = None
    redis_url = settings.redis_url
    if redis_url is None:
        embedded = EmbeddedRedis(settings.data_dir)
        redis_url = embedded.url
    store = RedisStore(
        redis_store.connect(redis_url),
        Keys(settings.redis_key_prefix),
        conversation_ttl_s=settings.conversation_ttl_s,
        dm_idle_reset_s=settings.dm_idle_reset_s,
        dedup_ttl_s=settings.event_dedup_ttl_s,
        profile_ttl_s=settings.profile_cache_ttl_s,
    )
    model = ClaudeModel(
        ClaudeModel.build_client(
            api_key=settings.anthropic_api_key.get_secret_value(),
            base_url=settings.anthropic_base_url,
            silence_timeout_s=settings.claude_silence_timeout_s,
            connect_timeout_s=settings.claude_connect_timeout_s,
        ),
        max_attempts=settings.claude_max_attempts,
        backoff_base_s=settings.claude_retry_base_delay_s,
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
        store.client, settings.redis_key_prefix, raw_retention_days=settings.usage_raw_retention_days
    )
    prices = (
        PriceTable.from_setting(settings.price_overrides)
        if settings.price_overrides.strip()
        else PriceTable(DEFAULT_PRICES)
    )
    return Core(settings, store, model, load_persona_catalog(settings), tools, web, mcp, usage, prices, embedded)


@dataclass
class Bot:
    """Everything a running Slack bot owns, so it can be closed in one place."""

    core: Core
    app: AsyncApp
    replies: Replies
    slack_deps: SlackDeps
    files: SlackFileSource
    slack_http: aiohttp.ClientSession

    @property
    def store(self) -> RedisStore:
        return self.core.store

    async def start(self) -> None:
        await self.core.start()

    async def close(self, *, grace_s: float = 30.0) -> None:
        """Let answers in progress finish (within `grace_s`), then close clients and the embedded Redis."""
        await self.slack_deps.in_progress.wait(grace_s)
        await self.replies.drain()
        await self.files.close()
        await self.slack_http.close()
        await self.core.close()


def build_bot(settings: Settings) -> Bot:
    settings.check_slack()
    assert settings.slack_bot_token is not None  # check_slack guarantees it; narrows the type
    core = build_core(settings)
    bot_token = settings.slack_bot_token.get_secret_value()
    extra_hosts = {h.strip() for h in settings.slack_file_hosts.split(",") if h.strip()}
    files = SlackFileSource(
        SlackFileFetcher(
            bot_token=bot_token,
            allowed_hosts=SlackFileFetcher.default_allowed_hosts(settings.slack_api_url) | extra_hosts,
            max_bytes=settings.max_file_bytes,
        )
    )
    slack_http = slack_web_session()
    client = AsyncWebClient(token=bot_token, base_url=settings.slack_api_url, session=slack_http)
    cost_admins = settings.id_list(settings.cost_admins)
    metering = core.metering(SlackAdminNotifier(client, cost_admins))
    replies = core.replies(SLACK_FORMATTING, files, SlackConversationReader(client), metering)
    deps = SlackDeps(
        replies=replies,
        ledger=core.store,
        budget=FairRateBudget(core.store),
        render=RenderConfig(
            edit_interval_s=settings.edit_interval_s,
            edits_per_minute=settings.workspace_edits_per_minute,
            max_message_chars=settings.max_message_chars,
        ),
        directory=Directory(core.store),
        channel_personas=ChannelPersonas(core.personas, core.store),
        persona_change=settings.persona_change,
        tools=core.tools,
        approvals=core.store,
        files=files,
        usage=core.usage,
        metering=metering,
        budgets=core.store,
        clock=lambda: datetime.now(UTC),
        access=AccessPolicy(
            allowed_channels=settings.id_list(settings.allowed_channels),
            allowed_users=settings.id_list(settings.allowed_users),
            denied_users=settings.id_list(settings.denied_users),
        ),
        cost_admins=cost_admins,
    )
    signing_secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    app = build_app(client=client, signing_secret=signing_secret, deps=deps)
    return Bot(core=core, app=app, replies=replies, slack_deps=deps, files=files, slack_http=slack_http)


def slack_web_session() -> aiohttp.ClientSession:
    """One keep-alive connection pool for every Web API call (Bolt hands it on to the client it builds per request).

    Without it slack_sdk opens and closes a new session, so a new TCP and TLS connection to Slack, for every call:
    four or five per answer. The 30 s total timeout is the one slack_sdk applies to the sessions it opens itself.
    Needs a running event loop, as build_bot always has.
    """
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30), cookie_jar=aiohttp.DummyCookieJar())
