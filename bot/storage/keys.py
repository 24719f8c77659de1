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
