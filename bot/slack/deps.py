"""What the Slack layer may use, in one value: bot/wiring fills it in, listeners and delivery read it.

Its own module, so listeners can name its type without importing the app that registers them (no import cycle,
not even a type-level one), as the bolt-python starter template keeps `app.py` apart from `listeners/`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore

from bot.core.access import AccessPolicy
from bot.core.answers import Answers
from bot.core.assistant import AssistantPane
from bot.core.call_windows import FairCallWindows
from bot.core.channel_personas import ChannelPersonas
from bot.core.metering import BudgetStore, Metering
from bot.core.ports import Approvals, EventLedger, FileSource
from bot.core.replies import Replies
from bot.core.tools.registry import ToolRegistry
from bot.core.workspaces import WorkspaceRetention
from bot.metrics import Metrics
from bot.slack.delivery import AnswersInProgress
from bot.slack.directory import Directory
from bot.slack.native_stream import NativeRefusals
from bot.slack.reply_stream import RenderConfig
from bot.storage.usage_ledger import RedisUsageLedger


@dataclass(frozen=True, slots=True)
class SlackDeps:
    """Core services the Slack layer may use; bot/wiring fills it in."""

    replies: Replies
    ledger: EventLedger
    budget: FairCallWindows
    render: RenderConfig
    directory: Directory
    channel_personas: ChannelPersonas
    tools: ToolRegistry
    approvals: Approvals
    files: FileSource
    usage: RedisUsageLedger
    metering: Metering
    budgets: BudgetStore
    clock: Callable[[], datetime]
    answers: Answers
    pane: AssistantPane
    retention: WorkspaceRetention
    installations: AsyncInstallationStore | None = None  # OAuth mode: where uninstalls delete tokens at once
    access: AccessPolicy = field(default_factory=AccessPolicy)
    cost_admins: frozenset[str] = frozenset()
    persona_change: str = "anyone"  # or "admins": who may change a channel's persona
    in_progress: AnswersInProgress = field(default_factory=AnswersInProgress)
    metrics: Metrics = field(default_factory=Metrics)
    native_streaming: str = "auto"  # "true" | "auto" (the assistant pane only) | "false"
    native_refusals: NativeRefusals = field(default_factory=NativeRefusals)
