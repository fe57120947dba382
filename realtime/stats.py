"""Run statistics in bounded memory: a camera can run for days, so nothing here grows with the frames.

Each figure (a stage's milliseconds, the end-to-end latency) is a :class:`Reservoir`: an exact
count, mean and maximum, and a uniform random sample of at most ``capacity`` values from which
medians and percentiles are read. While a run has no more values than ``capacity`` the sample is
every value, so short runs (tests, benchmarks) report exact percentiles; past it they are
estimates whose error shrinks with the capacity (4096 values: a median within about 1.6
percentile points, 95% of the time).

Memory bound: a :class:`RunStats` holds ``len(STAGES) + 1`` reservoirs of ``capacity`` float64
values, 8 x 4096 x 8 bytes = 256 KiB, plus a few hundred bytes each of bookkeeping, however many
frames it has seen (tests/test_bounded_memory.py feeds it an hour of 30 fps frames).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np

#: finder: the full-frame pass that proposes faces; crops: each face segmented in its crop;
#: merge: per-face smoothing and the crops' masks merged into the frame's mask grid
STAGES = ("decode", "finder", "crops", "merge", "upsample", "compose", "output")
#: values each reservoir keeps (2 minutes and 16 s of frames at 30 fps are kept whole)
RESERVOIR_SIZE = 4096


class Reservoir:
    """A stream of numbers in fixed memory: exact ``count``, ``mean`` and ``max``, and a uniform
    sample of at most ``capacity`` of them for :meth:`percentile` (Vitter's algorithm R).

    One thread appends (each pipeline stage owns its figures); read once the run is over.
    The sample's random choices are seeded, so a run's figures do not change between reads.
    """

    def __init__(self, capacity: int = RESERVOIR_SIZE, seed: int = 0) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.count = 0
        self.total = 0.0
        self.max = float("-inf")
        self._sample = np.empty(capacity, np.float64)
        self._random = random.Random(seed)

    def append(self, value: float) -> None:
        """Add one value: kept while there is room, then in place of a random kept one with
        probability ``capacity / count``, so every value seen is equally likely to be in the sample."""
        value = float(value)
        self.count += 1
        self.total += value
        if value > self.max:
            self.max = value
        if self.count <= self.capacity:
            self._sample[self.count - 1] = value
            return
        slot = int(self._random.random() * self.count)  # uniform in 0..count-1; randrange is 4x slower
        if slot < self.capacity:
            self._sample[slot] = value

    def __len__(self) -> int:
        """How many values were added (not how many are kept)."""
        return self.count

    @property
    def kept(self) -> np.ndarray:
        """The sample: every value while ``count <= capacity``, else ``capacity`` of them (a view)."""
        return self._sample[: min(self.count, self.capacity)]

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0..100) of the values (of the sample past ``capacity``); 0 when empty."""
        return float(np.percentile(self.kept, q)) if self.count else 0.0

    def median(self) -> float:
        return self.percentile(50)

    def nbytes(self) -> int:
        """Bytes of the sample: fixed at construction, whatever ``count`` becomes."""
        return self._sample.nbytes


def _stage_reservoirs() -> dict[str, Reservoir]:
    return {stage: Reservoir() for stage in STAGES}


@dataclass
class RunStats:
    """What a run did: frames, wall time, per-stage and end-to-end milliseconds, flicker, faces.

    ``stage_ms[stage]`` and ``latency_ms`` are :class:`Reservoir` objects: ``.append(ms)`` a
    value, read ``.median()``, ``.percentile(q)``, ``.mean``, ``.max``; memory stays fixed
    (see the module docstring for the bound).
    """

    frames: int = 0
    faces: int = 0  # faces tracked, summed over the frames (faces per frame = faces / frames)
    seconds: float = 0.0
    stage_ms: dict[str, Reservoir] = field(default_factory=_stage_reservoirs)
    latency_ms: Reservoir = field(default_factory=Reservoir)
    interrupted: bool = False
    flicker: float | None = None
    cpu_seconds: float = 0.0  # the process's CPU time over the counted frames (every thread)
    measuring_cpu_s: float = 0.0  # CPU seconds the flicker meter took (measuring, not facecam's own work)
    stuck: list[str] = field(default_factory=list)  # stages still running after the stop (a hung driver)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def faces_per_frame(self) -> float:
        return self.faces / self.frames if self.frames else 0.0

    def nbytes(self) -> int:
        """Bytes held by the reservoirs' samples: the same after one frame or a million."""
        return self.latency_ms.nbytes() + sum(r.nbytes() for r in self.stage_ms.values())

    def summary(self) -> str:
        stages = "  ".join(f"{s} {r.median():.1f}" for s, r in self.stage_ms.items() if r.count)
        text = f"{self.frames} frames in {self.seconds:.1f} s = {self.fps:.1f} FPS; median ms per stage: {stages}"
        text += f"; faces per frame {self.faces_per_frame:.2f}"
        if self.latency_ms.count:
            text += f"; latency p50 {self.latency_ms.median():.0f} ms"
        if self.flicker is not None:
            text += f"; flicker {self.flicker:.4f}"
        return text
