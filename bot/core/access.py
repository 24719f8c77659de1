"""Who may use the bot where: optional allow-lists of channels and users, and a deny-list of users."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """Empty allow-lists mean everyone; the deny-list always wins. DMs are governed by the user lists only."""

    allowed_channels: frozenset[str] = frozenset()
    allowed_users: frozenset[str] = frozenset()
    denied_users: frozenset[str] = frozenset()

    def allows(self, user_id: str, channel_id: str, *, is_dm: bool) -> bool:
        if user_id in self.denied_users:
            return False
        if self.allowed_users and user_id not in self.allowed_users:
            return False
        return is_dm or not self.allowed_channels or channel_id in self.allowed_channels
