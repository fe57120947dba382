"""On a GPU provider, one onnxruntime session per input shape.

onnxruntime's CUDA provider plans a session's convolutions again whenever its input shape
changes. Measured on an NVIDIA H200 (onnxruntime-gpu 1.31.1, CUDA 13): 0.7-2.3 s for each
change, back to a shape it had run before too, with cuDNN's algorithm search exhaustive or
heuristic. A stream alternates the full-frame pass (1280x736 at 720p) and the face crops
(160 or 224), so one session ran blur at 720p at 1.7 FPS. One session per shape ran the same
three looks in 4.5 ms a frame. The CPU provider has no such cost and keeps its one session.

A batch (several face crops) is padded with blank crops to a power of two, so that a crowd
whose face count changes every frame meets a handful of shapes, not one per count.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import numpy as np

#: sessions kept at once; the least recently used goes first (a session holds GPU memory)
MAX_SESSIONS = 16


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
    the same model on the same provider, :meth:`adopt` hands over one already open."""

    def __init__(self, open_another: Callable[[], object], limit: int = MAX_SESSIONS) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self._open_another = open_another
        self._limit = limit
        self._by_shape: OrderedDict[tuple[int, ...], object] = OrderedDict()

    def adopt(self, shape: tuple[int, ...], session) -> None:
        """Use ``session`` (already run at ``shape``) for ``shape``."""
        self._by_shape[tuple(shape)] = session
        self._evict()

    def _evict(self) -> None:
        while len(self._by_shape) > self._limit:
            self._by_shape.popitem(last=False)

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        """The input shapes that have a session, least recently used first."""
        return list(self._by_shape)

    def session_for(self, shape: tuple[int, ...]):
        """The session of ``shape``, opened on first use."""
        shape = tuple(shape)
        session = self._by_shape.pop(shape, None)
        if session is None:
            session = self._open_another()
        self._by_shape[shape] = session
        self._evict()
        return session

    def run(self, input_name: str, tensor: np.ndarray) -> np.ndarray:
        """The first output for ``tensor`` ``(N, ...)``, run padded (see padded_batch), cut back to N."""
        padded = padded_batch(tensor)
        return self.session_for(padded.shape).run(None, {input_name: padded})[0][: tensor.shape[0]]
