"""Every pacing constant of the Slack side, and Slack's per-method rate limits, in one place.

Slack evaluates limits per method, per app, per workspace, over a minute, bursts allowed
(https://docs.slack.dev/apis/web-api/rate-limits): Tier 1 1+/min, Tier 2 20+/min, Tier 3 50+/min, Tier 4 100+/min.
`chat.postMessage` is "special": about one message a second per channel, short bursts allowed, and an undocumented
ceiling of "several hundred messages per minute" per workspace
(https://docs.slack.dev/reference/methods/chat.postMessage). The bot spends a little under each figure, shared by
every process through Redis (bot/storage/call_windows.py), so it never meets a 429 however many processes run.

| method | Slack's limit | the bot spends |
| --- | --- | --- |
| chat.update | Tier 3 | WORKSPACE_EDITS_PER_MINUTE (45) a minute per workspace |
| chat.delete | Tier 3 | 45 a minute per workspace |
| chat.postMessage | ~1/s per channel; hundreds/min per workspace | 4 in 5 s per channel; WORKSPACE_POSTS_PER_MINUTE |
| chat.postEphemeral | Tier 4 | 90 a minute per workspace |
| chat.startStream / chat.stopStream | Tier 2 | 18 a minute per workspace |
| chat.appendStream | Tier 4 | 90 a minute per workspace |
| users.info / conversations.info | Tier 4 / Tier 3 | 90 / 45 a minute per workspace; over that, skipped |
| reactions.add / reactions.remove | Tier 3 / Tier 2 | not called by the bot |
| assistant.threads.setStatus | "special", no figure | 90 a minute per workspace (UNVERIFIED) |
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.ports import Allowance

EDIT_INTERVAL_S = 2.0  # default of EDIT_INTERVAL_S; Slack's AI guidance says about one edit every 3 s per message
EDITS_PER_MINUTE = 45  # default of WORKSPACE_EDITS_PER_MINUTE: under Tier 3's 50
POSTS_PER_MINUTE = 400  # default of WORKSPACE_POSTS_PER_MINUTE: Slack says "several hundred" (undocumented)
CHANNEL_POSTS = 4  # chat.postMessage per channel in any CHANNEL_POSTS_WINDOW_S: under "1 a second, bursts allowed"
CHANNEL_POSTS_WINDOW_S = 5.0
DELETES_PER_MINUTE = 45  # Tier 3
EPHEMERALS_PER_MINUTE = 90  # Tier 4
STREAM_STARTS_PER_MINUTE = 18  # chat.startStream and chat.stopStream: Tier 2
APPENDS_PER_MINUTE = 90  # chat.appendStream: Tier 4
STATUS_PER_MINUTE = 90  # assistant.threads.setStatus: "special", no published figure (UNVERIFIED)
LOOKUPS_PER_MINUTE_TIER3 = 45  # conversations.info: Tier 3 (a look-up over budget is skipped, not queued)
LOOKUPS_PER_MINUTE_TIER4 = 90  # users.info: Tier 4

THINKING_TICK_S = 3.0  # how often the "Thinking… 12s" status moves on (each tick is one paced edit)
NATIVE_FLUSH_INTERVAL_S = 1.0  # appends are cheap (Tier 4) but each is a request; once a second reads as smooth
# The final edit waits its turn behind other answers' final edits; timing out would leave a half answer.
FINAL_SYNC_TIMEOUT_S = 900.0
# An answer that promised its final edit and then died gives the edit back after this long.
PROMISE_TTL_S = 900.0
# Interim edits (streaming) leave this many edits free beyond those promised to answers already on screen.
INTERIM_KEEP = 3
# A "Thinking…" placeholder (which costs an extra edit) only while at most a third of the edit budget is in use.
PLACEHOLDER_SHARE = 3
LEDGER_TIMEOUT_S = 5.0  # the longest a question's de-duplication check may take (it runs after the ack)
# While Redis is unreachable a question's de-duplication check waits for it this long rather than let a retry through
# as new: Slack's retries of one event come over about five minutes (https://docs.slack.dev/apis/events-api).
LEDGER_OUTAGE_WAIT_S = 600.0


@dataclass(frozen=True, slots=True)
class Pacing:
    """The pacing settings, as the operator set them."""

    edit_interval_s: float = EDIT_INTERVAL_S
    edits_per_minute: int = EDITS_PER_MINUTE
    posts_per_minute: int = POSTS_PER_MINUTE

    def edits(self, workspace_id: str) -> Allowance:
        return Allowance("chat.update", workspace_id, self.edits_per_minute)

    def posts(self, workspace_id: str, channel_id: str) -> list[Allowance]:
        return [
            Allowance("chat.postMessage", workspace_id, CHANNEL_POSTS, CHANNEL_POSTS_WINDOW_S, channel_id),
            Allowance("chat.postMessage", workspace_id, self.posts_per_minute),
        ]

    def placeholder_keep(self) -> int:
        """Edits that must stay free for a new answer to get a placeholder (and with it an early first edit)."""
        return self.edits_per_minute - self.edits_per_minute // PLACEHOLDER_SHARE


def allowance(method: str, workspace_id: str) -> Allowance:
    """The workspace-wide allowance of a method other than chat.update and chat.postMessage."""
    per_minute = {
        "chat.delete": DELETES_PER_MINUTE,
        "chat.postEphemeral": EPHEMERALS_PER_MINUTE,
        "chat.startStream": STREAM_STARTS_PER_MINUTE,
        "chat.stopStream": STREAM_STARTS_PER_MINUTE,
        "chat.appendStream": APPENDS_PER_MINUTE,
        "assistant.threads.setStatus": STATUS_PER_MINUTE,
        "users.info": LOOKUPS_PER_MINUTE_TIER4,
        "conversations.info": LOOKUPS_PER_MINUTE_TIER3,
    }[method]
    return Allowance(method, workspace_id, per_minute)
