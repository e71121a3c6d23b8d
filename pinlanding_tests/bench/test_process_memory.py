"""The benchmarks' peak memory: the summed RSS of a process tree, grandchildren included."""

from __future__ import annotations

import os
import subprocess
import sys

from bench.process_memory import PeakMemory, tree_rss_bytes

MiB = 2**20
# A grandchild holds ~100 MiB (written, so resident) until its stdin closes; the child
# between them holds only an interpreter, as a Python that starts a Spark JVM does.
GRANDCHILD = "import sys; block = b'x' * (100 * 2**20); print('ready', flush=True); sys.stdin.read()"
CHILD = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {GRANDCHILD!r}])"


def test_the_peak_counts_a_grandchilds_memory_and_is_attributed_to_its_stage() -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        with PeakMemory(child.pid, interval=0.05, stage="before") as memory:
            memory.sample()  # the child alone: the grandchild is not up yet or still small
            assert child.stdout.readline() == "ready\n"
            memory.stage = "allocated"
            memory.sample()
            held = tree_rss_bytes(child.pid)
            child.stdin.close()  # the grandchild reads EOF and exits, then the child
            assert child.wait(60) == 0
    finally:
        child.kill()
    assert 100 * MiB <= held < 400 * MiB  # the grandchild's block and two interpreters, nothing else
    assert 100 * MiB <= memory.peaks["allocated"] < 400 * MiB and memory.peak == max(memory.peaks.values())
    assert tree_rss_bytes(child.pid) == 0  # gone: nothing to count


def test_this_process_is_the_default_tree() -> None:
    with PeakMemory(interval=0.05) as memory:
        memory.sample()
    assert memory.pid == os.getpid() and memory.peaks.keys() == {"all"} and memory.peak > 10 * MiB  # an interpreter at least
