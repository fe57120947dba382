"""The tools' allocator setting: glibc keeps freed frame-sized blocks (see realtime/memory.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Several frame-sized arrays alive at once (frames in flight), then all dropped, round after
# round; prints the page faults of each round after the first.
_ROUNDS = """
import resource, sys
import numpy as np
from facecam.realtime.memory import keep_freed_memory_for_cli
if sys.argv[1] == "keep":
    assert keep_freed_memory_for_cli()
def one_round():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    frames = []
    for _ in range(4):
        frame = np.empty((1080, 1920, 3), np.uint8)
        frame.fill(1)
        frames.append(frame)
    del frames
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
one_round()
print(max(one_round() for _ in range(3)))
"""


def _faults(setting: str) -> int:
    out = subprocess.run([sys.executable, "-c", _ROUNDS, setting], capture_output=True, text=True, check=True)
    return int(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_frame_sized_blocks_are_kept_for_the_next_frame():
    # four 1080p frames are 24 MB, 6,000 pages: glibc's defaults give them back and map them
    # again each round (about 2,000 faults here); kept, they are reused
    assert _faults("default") > 1000
    assert _faults("keep") < 100


def test_elsewhere_nothing_is_changed(monkeypatch):
    from facecam.realtime import memory

    monkeypatch.setattr(memory.sys, "platform", "win32")
    assert memory.keep_freed_memory_for_cli() is False
