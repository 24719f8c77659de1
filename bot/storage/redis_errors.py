"""What every Redis adapter shares: which driver errors mean "unreachable", and how they reach the core."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException
from redis.exceptions import TimeoutError as RedisTimeoutError

from bot.core.errors import StorageUnavailable

log = logging.getLogger("bot.storage.redis_store")  # the name these messages have always been logged under
P = ParamSpec("P")
R = TypeVar("R")

# RedisClusterException: the cluster client found no usable node (all down, or REDIS_URL is not in cluster mode);
# redis-py does not derive it from RedisError.
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError, RedisClusterException)


def translated(method: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Driver errors never leave the adapter: the core only knows StorageUnavailable."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except UNREACHABLE as error:
            log.warning("redis unreachable: %s", type(error).__name__)
            raise StorageUnavailable() from error

    return wrapper


async def stopped(task: asyncio.Task[None], *, within_s: float) -> None:
    """Wait for a helper task told to stop by an Event; cancel it only if it does not stop in time.

    Cancelling one mid-command is what these helpers used to do, and under load a cancellation landing inside a
    Redis command could come back as a timeout instead (redis-py's socket timeout and the cancel racing), be handled
    as an outage, and leave the helper looping for good, with the answer that awaited it hanging (seen in
    bench/load.py on about 1 % of answers). It also left the connection in use.
    """
    done, _ = await asyncio.wait({task}, timeout=within_s)
    if not done:
        task.cancel()
