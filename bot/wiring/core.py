"""The Slack-free half of the composition root: Settings → stores, the model, personas, tools, usage, metrics."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from bot import i18n, logs
from bot.core.answers import Answers
from bot.core.attachments import Attachments
from bot.core.breaker import BreakerPolicy
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
from bot.llm.claude import ClaudeModel
from bot.llm.failover import FailoverModel, build_model
from bot.mcp_tools import McpTools, load_mcp_config
from bot.media.preparer import PillowMediaPreparer
from bot.metrics import Metrics
from bot.settings import Settings, SettingsError
from bot.storage import redis_store
from bot.storage.breaker import RedisCircuitBreaker
from bot.storage.embedded import EmbeddedRedis
from bot.storage.keys import Keys, UsageKeys
from bot.storage.persona_files import builtin_personas_dir, load_personas
from bot.storage.redis_store import RedisStore
from bot.storage.settings_cache import CachedWorkspaceSettings
from bot.storage.usage_ledger import RedisUsageLedger
from bot.web.fetch import SafeWebFetcher

log = logging.getLogger(__name__)

# On shutdown, answers already shown get this long to reach history if Redis is having a blip.
HISTORY_FLUSH_TIMEOUT_S = 10.0


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
    # Channel personas and budgets as every answer reads them: a copy dropped on change (bot/storage/settings_cache.py).
    workspace_settings: CachedWorkspaceSettings = field(init=False)

    def __post_init__(self) -> None:
        self.workspace_settings = CachedWorkspaceSettings(self.store)

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
        return Metering(self.usage, self.prices, policy, notifier=notifier, budget_store=self.workspace_settings)

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
        return Replies(
            self.model,
            self.store,
            config,
            self.personas,
            self.workspace_settings,
            attachments=self._attachments(files),
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
            context=self._context_window(),
            thinking=self._thinking_planner(),
            storage_wait_s=settings.storage_wait_s,
            answers=answers,
        )

    def _attachments(self, files: FileSource | None) -> Attachments | None:
        if files is None:
            return None
        preparer = PillowMediaPreparer(self.settings.image_decode_concurrency)
        return Attachments(files, preparer, self.store, max_media_per_request=self.settings.max_images_per_thread)

    def _context_window(self) -> ContextWindow:
        settings = self.settings
        policy = ContextPolicy(
            token_limit=settings.context_token_limit,
            fold_at=settings.context_fold_at,
            fold_to=min(0.4, settings.context_fold_at / 2),
            keep_recent_turns=settings.context_keep_recent_turns,
        )
        return ContextWindow(policy, catalog=self.model, counter=self.model, summary_model=settings.claude_fast_model)

    def _thinking_planner(self) -> ThinkingPlanner:
        settings = self.settings
        return ThinkingPlanner(
            ThinkingPolicy(
                default=settings.thinking,
                triage_model=settings.claude_fast_model,
                medium_budget=settings.thinking_medium_budget,
                large_budget=settings.thinking_large_budget,
                log_thinking=settings.log_thinking,
            )
        )

    async def close(self) -> None:
        if self.mcp is not None:
            await self.mcp.close()
        if self.web is not None:
            await self.web.close()
        await self.model.close()
        await self.workspace_settings.close()  # its subscription: before Redis closes
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
