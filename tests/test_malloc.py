"""tune_malloc keeps the memory of freed read buffers for the next read: the allocation
pattern of a fast download (a few READ_SIZE buffers made and freed per read) takes fresh
zeroed pages from the kernel on every round with glibc's defaults, and none once tuned."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from segfetch.engine import client

# A child process: glibc's thresholds are process-wide and adapt to what was freed before.
CHURN = """
import resource, sys
from segfetch.engine import client
if sys.argv[1] == "tuned":
    client.tune_malloc()

def churn():
    for _ in range(100):
        bufs = [bytes(client.READ_SIZE) for _ in range(3)]
        del bufs

churn()  # glibc's adaptive thresholds settle in the first rounds
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
churn()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", CHURN, mode], capture_output=True, text=True, check=True
    )
    return int(out.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_freed_read_buffers_are_reused_without_page_faults() -> None:
    rounds = 100
    assert faults("plain") >= rounds  # the churn the tuning is for: pages taken every round
    assert faults("tuned") < rounds // 10  # the pages are kept: next to none taken again


def test_tune_malloc_is_harmless_to_repeat() -> None:
    client.tune_malloc()
    client.tune_malloc()
    assert bytes(client.READ_SIZE)[-1] == 0
