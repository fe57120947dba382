"""On the CUDA provider, one onnxruntime session per input shape.

onnxruntime's CUDA provider plans a session's convolutions again whenever its input shape
changes. Measured on an NVIDIA H200 (onnxruntime-gpu 1.31.1, CUDA 13): 0.7-2.3 s at each
change, back to a shape it had run before too, with cuDNN's algorithm search exhaustive or
heuristic. A stream alternates its full-frame passes (at 720p: 224x128, and 1280x736 for the
small faces, whole or in 320x320 tiles) and the face crops, so one session ran blur at 720p at
1.7 FPS. In the same process, one session per shape ran three such shapes (1280x736, 160 and
224) in 4.5 ms a round, where one session for all three took 4.1 and 6.8 s a round.

The first run of each new shape still costs about that once (a session is opened and planned);
a stream meets a handful: its passes, and its crops at the model's size in batches padded with
blank crops to a power of two (a crowd whose face count changes every frame meets a few batch
sizes, not one per count). TensorRT builds an engine per optimisation profile and was not
measured here: it keeps one session, as the CPU provider does.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from facecam.errors import FacecamError
from facecam.model_file import checked_card
from facecam.realtime.providers import PROVIDERS, new_session

#: sessions kept at once; the least recently used goes first (each holds GPU memory)
MAX_SESSIONS = 12


def padded_count(n: int) -> int:
    """The batch size ``n`` items are run at: the next power of two."""
    return 1 << max(0, n - 1).bit_length()


def padded_batch(tensor: np.ndarray) -> np.ndarray:
    """``(N, ...)`` -> ``(padded_count(N), ...)``, the added items zeros."""
    n = tensor.shape[0]
    extra = padded_count(n) - n
    if extra == 0:
        return tensor
    return np.concatenate([tensor, np.zeros((extra, *tensor.shape[1:]), tensor.dtype)])


class ShapeSessions:
    """Runs each input shape on a session of its own; ``open_another`` opens one more session of
    the same model on the same provider, :meth:`adopt` hands over one already open. Safe to share
    between threads (a Segmenter may serve several streams): one session is opened per shape."""

    def __init__(self, open_another: Callable[[], object], limit: int = MAX_SESSIONS) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self._open_another = open_another
        self._limit = limit
        self._by_shape: OrderedDict[tuple[int, ...], object] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        """The input shapes that have a session, least recently used first."""
        with self._lock:
            return list(self._by_shape)

    def adopt(self, shape: tuple[int, ...], session) -> None:
        """Use ``session`` (already run at ``shape``) for ``shape``."""
        with self._lock:
            self._by_shape[tuple(shape)] = session
            self._evict()

    def session_for(self, shape: tuple[int, ...]):
        """The session of ``shape``, opened on first use (under the lock: another thread asking
        for the same shape meanwhile waits for this one instead of opening a second)."""
        shape = tuple(shape)
        with self._lock:
            session = self._by_shape.pop(shape, None)
            if session is None:
                session = self._open_another()
            self._by_shape[shape] = session
            self._evict()
            return session

    def _evict(self) -> None:
        while len(self._by_shape) > self._limit:
            self._by_shape.popitem(last=False)

    def run(self, input_name: str, tensor: np.ndarray) -> np.ndarray:
        """The first output for ``tensor`` ``(N, ...)``, run padded (see padded_batch), cut back to N."""
        padded = padded_batch(tensor)
        return self.session_for(padded.shape).run(None, {input_name: padded})[0][: tensor.shape[0]]


def sessions_per_shape(session, first_shape: tuple[int, ...], path: Path, provider: str, threads: int):
    """A ShapeSessions for a model whose ``session`` (already run at ``first_shape``) is on
    ``provider``: on CUDA; None elsewhere (one session does). Each later session re-checks the
    file (it may have changed since) and must start on the same provider."""
    if provider != PROVIDERS["cuda"]:
        return None

    def open_another():
        checked_card(path)
        another = new_session(path, provider, threads)
        if another.get_providers()[0] != provider:
            raise FacecamError(f"a new {provider} session for {path.name} fell back to {another.get_providers()[0]}")
        return another

    sessions = ShapeSessions(open_another)
    sessions.adopt(first_shape, session)
    return sessions


def first_output(session, shape_sessions: ShapeSessions | None, input_name: str, tensor: np.ndarray) -> np.ndarray:
    """The model's first output for ``tensor``: on its shape's own session when there are
    ``shape_sessions``, else on ``session``."""
    if shape_sessions is not None:
        return shape_sessions.run(input_name, tensor)
    return session.run(None, {input_name: tensor})[0]
