"""Every Redis key pattern in one place, so a key's shape and its time-to-live are never guessed elsewhere.

Every key that holds a workspace's data names the workspace (`bot.core.workspaces.workspace_id`: the team id, or the
enterprise id for an org-wide install). Two keys are global by nature: OAuth states (issued before anyone knows the
workspace; minutes) and the schedule of pending purges (an index of workspaces). Usage
keys live in `usage_ledger.UsageKeys`, also under the workspace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.core.conversation import ConversationKey


@dataclass(frozen=True, slots=True)
class Keys:
    """Key builder bound to a prefix (tests give each run its own prefix on a shared Redis)."""

    prefix: str

    def conversation(self, key: ConversationKey) -> str:
        return f"{self.prefix}conv:{key.workspace_id}:{key.channel_id}:{key.thread_id}"

    def conversation_meta(self, key: ConversationKey) -> str:
        """Hash beside the turns list: the persona the thread started with."""
        return f"{self.prefix}convmeta:{key.workspace_id}:{key.channel_id}:{key.thread_id}"

    def channel_persona(self, workspace_id: str, channel_id: str) -> str:
        """No time-to-live: an admin's choice for a channel lasts until changed."""
        return f"{self.prefix}chanpersona:{workspace_id}:{channel_id}"

    def media(self, workspace_id: str, ref: str) -> str:
        """Processed bytes of one file (base64), shared by every thread that shows it."""
        return f"{self.prefix}media:{workspace_id}:{ref}"

    def budgets(self, workspace_id: str) -> str:
        """No time-to-live: an admin's budget lasts until changed."""
        return f"{self.prefix}budgets:{workspace_id}"

    def approval(self, workspace_id: str, approval_id: str) -> str:
        """A click from another workspace cannot reach it, even with a leaked approval id."""
        return f"{self.prefix}approval:{workspace_id}:{approval_id}"

    def profile(self, kind: str, workspace_id: str, object_id: str) -> str:
        return f"{self.prefix}profile:{kind}:{workspace_id}:{object_id}"

    def conversation_lock(self, key: ConversationKey) -> str:
        return f"{self.prefix}lock:{key.workspace_id}:{key.channel_id}:{key.thread_id}"

    def dm_session(self, workspace_id: str, channel_id: str) -> str:
        return f"{self.prefix}dm:{workspace_id}:{channel_id}"

    def delivery(self, workspace_id: str, delivery_id: str) -> str:
        return f"{self.prefix}seen:{workspace_id}:{delivery_id}"

    def call_window(self, bucket: str) -> str:
        """Sorted set of a Slack method's recent calls in one bucket ("chat.update:T123", "chat.postMessage:T123:C4"),
        scored by time; lives a window (a minute at most) past its last call."""
        return f"{self.prefix}calls:{bucket}"

    def call_promises(self, bucket: str) -> str:
        """Sorted set of calls set aside for answers under way, scored by when each lapses (minutes)."""
        return f"{self.prefix}calls:{bucket}:promised"

    def call_hold(self, bucket: str) -> str:
        """Until when (ms) nobody calls: Slack's Retry-After after a 429; lives that long."""
        return f"{self.prefix}calls:{bucket}:hold"

    def answer(self, workspace_id: str, answer_id: str) -> str:
        """JSON record of one answer (asker, persona, question's place, state); lives as long as conversations."""
        return f"{self.prefix}answer:{workspace_id}:{answer_id}"

    def answer_stop(self, workspace_id: str, answer_id: str) -> str:
        """Set when someone clicks Stop; read by the process writing the answer when its Stop channel reconnects."""
        return f"{self.prefix}answer-stop:{workspace_id}:{answer_id}"

    def answer_stops_channel(self) -> str:
        """Pub/sub channel of Stop requests ("<workspace> <answer id>"), heard by every process."""
        return f"{self.prefix}answer-stops"

    def answer_votes(self, workspace_id: str, answer_id: str) -> str:
        """Hash of user -> "up" | "down": one vote per person per answer."""
        return f"{self.prefix}answer-votes:{workspace_id}:{answer_id}"

    def feedback_day(self, workspace_id: str, day: str) -> str:
        """Hash of "<persona>:up" / "<persona>:down" counts for answers asked that day (ISO date)."""
        return f"{self.prefix}feedback:{workspace_id}:{day}"

    def pane_context(self, workspace_id: str, pane_id: str, thread_id: str) -> str:
        """The channel a person was viewing beside an assistant-pane thread."""
        return f"{self.prefix}pane:{workspace_id}:{pane_id}:{thread_id}"

    def installation(self, workspace_id: str) -> str:
        """Hash: the latest installation, the bot, and each installing user's installation (JSON). Deleted at once
        on uninstall, never by the delayed purge (which could race a reinstall)."""
        return f"{self.prefix}installation:{workspace_id}"

    def token_refresh_lock(self, workspace_id: str) -> str:
        """Held while one process refreshes a rotating token: Slack revokes a refresh token once it is used."""
        return f"{self.prefix}tokenlock:{workspace_id}"

    def oauth_state(self, state: str) -> str:
        """Global: issued before the workspace is known; lives the state's expiry (minutes)."""
        return f"{self.prefix}oauthstate:{state}"

    def oauth_states_live(self) -> str:
        """Sorted set: each live OAuth state by its expiry time, to cap how many exist (global, like the states)."""
        return f"{self.prefix}oauthstates"

    def install_rate(self, address: str, minute: int) -> str:
        """Counter: GET /slack/install visits from one client address in one minute; expires after two."""
        return f"{self.prefix}installrate:{minute}:{address}"

    def pending_purges(self) -> str:
        """Global sorted set: workspace ids scored by when their data is to be deleted (epoch seconds)."""
        return f"{self.prefix}purges"

    def workspace_data(self, workspace_id: str) -> tuple[str, re.Pattern[str]]:
        """What the delayed purge deletes for a departed workspace: a SCAN MATCH glob, and the exact test for a key.

        Included: answers' records, Stop flags and votes, the daily feedback counts and assistant-pane contexts.
        Not included: the usage ledger (billing history an admin may still need; it expires on its own schedule),
        and the installation (deleted at once on uninstall). Locks, rate buckets, approvals and delivery ids are
        included although they expire within hours anyway.
        """
        p, ws = re.escape(self.prefix), re.escape(workspace_id)
        exact = re.compile(
            rf"{p}(?:(?:conv|convmeta|chanpersona|media|approval|lock|dm|seen|answer|answer-stop|answer-votes"
            rf"|feedback|pane):{ws}:.+"
            rf"|budgets:{ws}|profile:[^:]+:{ws}:.+|calls:[^:]+:{ws}(?::[A-Z0-9]+)?(?::promised|:hold)?)"
        )
        return f"{_glob_escape(self.prefix)}*{_glob_escape(workspace_id)}*", exact


def _glob_escape(text: str) -> str:
    """Slack ids never hold glob characters, but a prefix might: match them literally."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)
