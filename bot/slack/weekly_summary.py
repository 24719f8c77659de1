"""The weekly usage summary: last week's report posted to a workspace's channel, once per ISO week.

Not a listener (nothing in Slack triggers it): the bot's background loop in `bot/__main__.py` calls it hourly, and
the ledger's once-per-week claim keeps replicas and restarts from posting twice.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core import texts
from bot.core.i18n import tr
from bot.core.usage import Claim
from bot.slack.cost_views import usage_report
from bot.storage.usage_ledger import RedisUsageLedger

log = logging.getLogger(__name__)


async def post_weekly_summary(
    usage: RedisUsageLedger, client: AsyncWebClient, channel_id: str, workspace_id: str, today: date
) -> bool:
    """Post last week's (Monday-Sunday) report once per ISO week, however many replicas or restarts try."""
    start = today - timedelta(days=today.weekday() + 7)
    end = start + timedelta(days=6)
    year, week, _ = start.isocalendar()
    iso_week = f"{year}-W{week:02d}"
    if not await usage.claim_once(Claim("weekly_summary", workspace_id, iso_week)):
        return False
    report = await usage.report(workspace_id, start, end)
    text, blocks = usage_report(report, tr(texts.PERIOD_WEEK, week=iso_week))
    try:
        await client.chat_postMessage(
            channel=channel_id, text=text, blocks=blocks, unfurl_links=False, unfurl_media=False
        )
    except SlackApiError as error:
        # The claim is spent, so this week's summary is skipped rather than retried into a possible duplicate.
        log.warning("weekly usage summary for %s not posted: %s", workspace_id, error.response.get("error"))
        return False
    return True
