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

    def conversation_lock(self, key: ConversationKey) -> str:
        return f"{self.prefix}lock:{key.workspace_id}:{key.channel_id}:{key.thread_id}"

    def dm_session(self, workspace_id: str, channel_id: str) -> str:
        return f"{self.prefix}dm:{workspace_id}:{channel_id}"

    def delivery(self, delivery_id: str) -> str:
        return f"{self.prefix}seen:{delivery_id}"

    def rate_budget(self, bucket: str) -> str:
        return f"{self.prefix}rate:{bucket}"
