"""An exclusive lock on a file beside something several processes share.

Dagster runs steps in separate processes (the multiprocess executor, several runs launched
together by a sensor or a backfill), so anything two steps must not do at the same time
takes a lock on a file: the DuckDB warehouse (one writer per file) and a publish of the site
(one switch at a time). `fcntl.flock` locks are released by the kernel when the holder's
process ends, so a crashed holder never leaves one behind.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

POLL_S = 0.05  # how often a waiting process retries (a blocking flock could not time out)


class LockTimeout(RuntimeError):
    pass


@contextmanager
def exclusive_lock(path: Path, timeout_s: float, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if needed) for the block. Waits at most
    `timeout_s` for another holder, then raises `LockTimeout`; `on_wait` is called once when
    the lock is busy (to say why a step is waiting)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as lock_file:
        _acquire(lock_file, path, timeout_s, on_wait)
        try:
            yield
        finally:
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
