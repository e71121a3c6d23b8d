"""Peak resident memory of a process tree, sampled: what the benchmarks report as peak RSS.

The tree is a process and all its descendants (a Spark JVM is a child or grandchild of the
Python that started it), so the figure is what the machine must hold, not one process's
share. Sampling misses peaks shorter than the interval; the benchmarks sample every
0.1-0.2 s, far below the seconds a stage takes.
"""

from __future__ import annotations

import os
import threading

import psutil


def tree_rss_bytes(pid: int) -> int:
    """Summed RSS of a process and all its descendants; 0 once the process is gone."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except (psutil.NoSuchProcess, psutil.ZombieProcess):  # ended between listing and reading
            continue
    return total


class PeakMemory:
    """Samples the tree of `pid` (default: this process) on a thread while the `with` block
    runs; `peaks` holds the peak per stage (set `stage` as the work moves on) and `peak` the
    overall one, in bytes::

        with PeakMemory(process.pid, interval=0.1) as memory:
            process.wait()
        print(memory.peak / 2**20, "MiB")
    """

    def __init__(self, pid: int | None = None, interval: float = 0.2, stage: str = "all"):
        self.pid = os.getpid() if pid is None else pid
        self.interval = interval
        self.stage = stage
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    @property
    def peak(self) -> int:
        return max(self.peaks.values(), default=0)

    def sample(self) -> None:
        stage = self.stage  # read once: the caller may move on while the tree is walked
        self.peaks[stage] = max(self.peaks.get(stage, 0), tree_rss_bytes(self.pid))

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
