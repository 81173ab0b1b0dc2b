"""What "the store is unavailable" means, named once for every module outside the store.

Only the store package names the Redis client's exception types (`tests/test_layering.py`
checks). A module that must tell an outage (retryable: answer UNAVAILABLE, count it, try
again) from a bug catches these tuples instead.
"""

from __future__ import annotations

from typing import Final

from redis import exceptions as redis_errors

__all__ = ["STORE_CONFLICT", "STORE_OR_SOCKET_UNAVAILABLE", "STORE_UNAVAILABLE"]

#: The client's outage errors: the store is restarting, partitioned or timed out.
STORE_UNAVAILABLE: Final[tuple[type[Exception], ...]] = (
    redis_errors.ConnectionError, redis_errors.TimeoutError)
#: The same and a bare socket error (the leader's lease also sees the socket's own).
STORE_OR_SOCKET_UNAVAILABLE: Final[tuple[type[Exception], ...]] = (*STORE_UNAVAILABLE, OSError)
#: An optimistic transaction lost its race (a WATCHed key moved): read again and retry.
STORE_CONFLICT: Final[tuple[type[Exception], ...]] = (redis_errors.WatchError,)
