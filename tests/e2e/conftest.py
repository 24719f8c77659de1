"""End-to-end harness: the real bot (Bolt app, aiohttp server, slack_sdk and anthropic clients, Redis) wired to
fake Slack and fake Claude servers on 127.0.0.1, driven by signed requests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from bot.server import SLACK_PATH, metrics_app_for, web_app_for
from bot.settings import Settings
from bot.wiring import Bot, build_bot
from tests.fakes.anthropic_api import FakeAnthropic
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import SlackRequestSender

SIGNING_SECRET = "test-signing-secret"
# A fixed Fernet key (OAuth mode refuses to start without TOKEN_ENCRYPTION_KEY); single-token bots ignore it.
TOKEN_KEY = "dGVzdC10b2tlbi1lbmNyeXB0aW9uLWtleS0zMmJ5dGU="


@dataclass
class RunningBot:
    bot: Bot
    url: str
    sender: SlackRequestSender
    runner: web.AppRunner
    metrics_runner: web.AppRunner
    metrics_url: str  # /metrics is served on its own port (METRICS_PORT), as in production

    async def stop(self) -> None:
        await self.sender.close()
        await self.runner.cleanup()
        await self.metrics_runner.cleanup()
        await self.bot.close()


BotFactory = Callable[..., Awaitable[RunningBot]]


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    """A workspace with one person and one channel the bot is in, as the payload builders assume."""
    async with FakeSlack() as fake:
        fake.add_user(
            "U0USER",
            name="ada",
            real_name="Ada Lovelace",
            display_name="Ada",
            title="Staff Engineer",
            tz="Europe/Paris",
        )
        fake.add_channel("C0GENERAL", name="general", topic="Anything goes", purpose="Company-wide chatter")
        yield fake


@pytest.fixture
async def claude() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
def settings_for(slack: FakeSlack, claude: FakeAnthropic, redis_url: str, key_prefix: str) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "slack_bot_token": "xoxb-test-token",
            "slack_signing_secret": SIGNING_SECRET,
            "slack_api_url": slack.api_url,
            "anthropic_api_key": "test-key",
            "anthropic_base_url": claude.base_url,
            "redis_url": redis_url,
            "redis_key_prefix": key_prefix,
            "edit_interval_s": 1.0,
            "claude_retry_base_delay_s": 0.01,
            "storage_wait_s": 10.0,
            "host": "127.0.0.1",
            "port": 0,
            "metrics_port": 0,
            "token_encryption_key": TOKEN_KEY,
        }
        values.update(overrides)
        return Settings(**values, _env_file=None)

    return make


@pytest.fixture
async def start_bot(settings_for: Callable[..., Settings], redis_client: Any) -> AsyncIterator[BotFactory]:
    """Start bots (several may share Redis, e.g. to show history survives a restart); all stopped at the end."""
    running: list[RunningBot] = []

    async def start(**overrides: Any) -> RunningBot:
        settings = settings_for(**overrides)
        bot = build_bot(settings)
        await bot.start()
        runner = web.AppRunner(web_app_for(bot, settings), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        url = f"http://127.0.0.1:{port}"
        metrics_runner = web.AppRunner(metrics_app_for(bot, settings), access_log=None)
        await metrics_runner.setup()
        await web.TCPSite(metrics_runner, "127.0.0.1", 0).start()
        metrics_url = f"http://127.0.0.1:{metrics_runner.addresses[0][1]}"
        sender = SlackRequestSender(url + SLACK_PATH, SIGNING_SECRET)
        instance = RunningBot(bot, url, sender, runner, metrics_runner, metrics_url)
        running.append(instance)
        return instance

    yield start
    for instance in running:
        await instance.stop()


@pytest.fixture
async def running(start_bot: BotFactory) -> RunningBot:
    return await start_bot()
