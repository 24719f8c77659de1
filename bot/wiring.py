"""Composition root: turns Settings into clients, stores, services and the Bolt app. The one place that knows all."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.prompts import ReplyConfig
from bot.core.replies import Replies
from bot.llm.claude import ClaudeModel
from bot.settings import Settings
from bot.slack.app import SlackDeps, build_app
from bot.slack.reply_stream import RenderConfig
from bot.storage import redis_store
from bot.storage.embedded import EmbeddedRedis
from bot.storage.keys import Keys
from bot.storage.redis_store import RedisStore

log = logging.getLogger(__name__)


@dataclass
class Bot:
    """Everything a running bot owns, so it can be closed in one place."""

    settings: Settings
    app: AsyncApp
    store: RedisStore
    model: ClaudeModel
    replies: Replies
    slack_deps: SlackDeps
    embedded_redis: EmbeddedRedis | None = field(default=None)

    async def close(self, *, grace_s: float = 30.0) -> None:
        """Let answers in progress finish (within `grace_s`), then close clients and the embedded Redis."""
        await self.slack_deps.in_progress.wait(grace_s)
        await self.replies.drain()
        await self.model.close()
        await self.store.close()
        if self.embedded_redis is not None:
            self.embedded_redis.close()


def build_bot(settings: Settings) -> Bot:
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
    fallbacks = (settings.claude_fallback_model,) if settings.claude_fallback_model else ()
    replies = Replies(
        model,
        store,
        ReplyConfig(model=settings.claude_model, max_tokens=settings.claude_max_tokens, fallback_models=fallbacks),
        storage_wait_s=settings.storage_wait_s,
    )
    client = AsyncWebClient(token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url)
    deps = SlackDeps(
        replies=replies,
        ledger=store,
        budget=store,
        render=RenderConfig(
            edit_interval_s=settings.edit_interval_s,
            edits_per_minute=settings.workspace_edits_per_minute,
            max_message_chars=settings.max_message_chars,
        ),
    )
    signing_secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    app = build_app(client=client, signing_secret=signing_secret, deps=deps)
    return Bot(
        settings=settings,
        app=app,
        store=store,
        model=model,
        replies=replies,
        slack_deps=deps,
        embedded_redis=embedded,
    )
