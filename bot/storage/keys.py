"""Every Redis key pattern in one place, so a key's shape and its time-to-live are never guessed elsewhere."""

from __future__ import annotations

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

    def approval(self, approval_id: str) -> str:
        return f"{self.prefix}approval:{approval_id}"

    def profile(self, kind: str, workspace_id: str, object_id: str) -> str:
        return f"{self.prefix}profile:{kind}:{workspace_id}:{object_id}"

    def conversation_lock(self, key: ConversationKey) -> str:
        return f"{self.prefix}lock:{key.workspace_id}:{key.channel_id}:{key.thread_id}"

    def dm_session(self, workspace_id: str, channel_id: str) -> str:
        return f"{self.prefix}dm:{workspace_id}:{channel_id}"

    def delivery(self, delivery_id: str) -> str:
        return f"{self.prefix}seen:{delivery_id}"

    def rate_budget(self, bucket: str) -> str:
        return f"{self.prefix}rate:{bucket}"

    def answer(self, workspace_id: str, answer_id: str) -> str:
        """JSON record of one answer (asker, persona, question's place, state); lives as long as conversations."""
        return f"{self.prefix}answer:{workspace_id}:{answer_id}"

    def answer_stop(self, workspace_id: str, answer_id: str) -> str:
        """Set when someone clicks Stop; the process writing the answer polls it."""
        return f"{self.prefix}answer-stop:{workspace_id}:{answer_id}"

    def answer_votes(self, workspace_id: str, answer_id: str) -> str:
        """Hash of user -> "up" | "down": one vote per person per answer."""
        return f"{self.prefix}answer-votes:{workspace_id}:{answer_id}"

    def feedback_day(self, workspace_id: str, day: str) -> str:
        """Hash of "<persona>:up" / "<persona>:down" counts for answers asked that day (ISO date)."""
        return f"{self.prefix}feedback:{workspace_id}:{day}"

    def pane_context(self, workspace_id: str, pane_id: str, thread_id: str) -> str:
        """The channel a person was viewing beside an assistant-pane thread."""
        return f"{self.prefix}pane:{workspace_id}:{pane_id}:{thread_id}"
