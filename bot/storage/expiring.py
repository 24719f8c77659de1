"""A dict whose entries vanish after their time-to-live: the in-memory twins' stand-in for Redis TTLs."""

from __future__ import annotations

import math
from collections.abc import Callable


class Expiring:
    """A dict whose entries vanish after their time-to-live, read against the store's clock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._items: dict[object, tuple[object, float]] = {}

    def get(self, key: object) -> object | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[1] <= self._clock():
            del self._items[key]
            return None
        return item[0]

    def set(self, key: object, value: object, ttl_s: float | None = None) -> None:
        self._items[key] = (value, math.inf if ttl_s is None else self._clock() + ttl_s)

    def delete(self, key: object) -> bool:
        return self._items.pop(key, None) is not None

    def drop_where(self, matches: Callable[[tuple[object, ...]], bool]) -> int:
        """Delete every entry whose (tuple) name matches; how many went."""
        doomed = [key for key in self._items if isinstance(key, tuple) and matches(key)]
        for key in doomed:
            del self._items[key]
        return len(doomed)
