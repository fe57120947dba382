"""Windows and macOS: the video writer and the signal deferral use no Unix-only call.

CI runs on Linux only, so the Unix-only attributes are removed here, as on Windows, and the
writing path must still work.
"""

from __future__ import annotations

import os
import shutil
import signal

import numpy as np
from conftest import probe

from facecam.errors import interrupts_deferred
from facecam.realtime.video_io import VideoWriter


def test_writer_and_signal_deferral_without_unix_only_calls(tmp_path, monkeypatch, clip):
    # On Windows shutil.disk_usage asks the OS directly; on Linux it is built on os.statvfs, so
    # it is answered here the Windows way: without statvfs.
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage)
    for module, name in ((signal, "pthread_sigmask"), (os, "statvfs"), (signal, "SIGHUP"), (signal, "SIGKILL")):
        monkeypatch.delattr(module, name, raising=False)
    with interrupts_deferred():
        pass
    out = tmp_path / "out.mp4"
    with VideoWriter(out, 12, 160, 120, audio_from=clip) as writer:
        for i in range(12):
            writer.write(np.full((120, 160, 3), 10 * i, np.uint8))
    assert probe(out)["frames"] == 12 and probe(out)["audio"] == "aac"
