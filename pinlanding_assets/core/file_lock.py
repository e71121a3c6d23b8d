"""An exclusive lock on a file beside something several processes share.

Dagster runs steps in separate processes (the multiprocess executor, several runs launched
together by a sensor or a backfill), so anything two steps must not do at the same time
takes a lock on a file: the DuckDB warehouse (one writer per file) and a publish of the site
(one switch at a time). `fcntl.flock` locks are released by the kernel when the holder's
process ends, so a crashed holder never leaves one behind.

A flock belongs to an open file, not to a thread, so a thread asking again for a lock it
already holds would wait for itself until the timeout. The module remembers which thread of
which process holds each lock file, and such a nested request fails at once
(`LockHeldByThisThread`); other threads and processes still queue.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

POLL_S = 0.05  # how often a waiting process retries (a blocking flock could not time out)


class LockTimeout(RuntimeError):
    pass


class LockHeldByThisThread(RuntimeError):
    pass


# lock file -> (pid, thread id) holding it in this process. The pid keeps a forked child
# (which inherits this dict) from mistaking its parent's hold for its own.
_holders: dict[str, tuple[int, int]] = {}
_holders_guard = threading.Lock()


def _this_thread() -> tuple[int, int]:
    return os.getpid(), threading.get_ident()


@contextmanager
def exclusive_lock(path: Path, timeout_s: float, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if needed) for the block. Waits at most
    `timeout_s` for another holder, then raises `LockTimeout`; raises `LockHeldByThisThread`
    at once if this thread holds it already; `on_wait` is called once when the lock is busy
    (to say why a step is waiting)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = str(path.resolve())
    with _holders_guard:
        if _holders.get(key) == _this_thread():
            raise LockHeldByThisThread(f"this thread already holds the lock {path}; asking again would wait for itself")
    with open(path, "a+") as lock_file:
        _acquire(lock_file, path, timeout_s, on_wait)
        with _holders_guard:
            _holders[key] = _this_thread()
        try:
            yield
        finally:
            with _holders_guard:
                del _holders[key]
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _acquire(lock_file, path: Path, timeout_s: float, on_wait: Callable[[], None] | None) -> None:
    deadline = time.monotonic() + timeout_s
    waiting = False
    while True:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if not waiting and on_wait is not None:
                on_wait()
            waiting = True
            if time.monotonic() > deadline:
                raise LockTimeout(f"waited {timeout_s:.0f}s for the lock {path}") from None
            time.sleep(POLL_S)
