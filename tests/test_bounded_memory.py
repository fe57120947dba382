"""Long sessions: run statistics and the compose cache stay within a fixed memory bound.

A camera left running for a day must not grow: before, RunStats kept every frame's timings
(about 27 MiB per hour at 30 fps) and ComposeSettings one full-size background per frame size.

The bounds asserted here:
- RunStats: under 320 KiB after an hour of 30 fps frames (108,000), however long it runs
  (8 reservoirs x 4096 float64 = 256 KiB of samples, plus bookkeeping);
- ComposeSettings' cache: at most CACHE_ENTRIES (4) full-frame images after 100 photo sizes,
  i.e. 4 x H x W x 3 bytes of the largest recent sizes, and nothing else retained.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from facecam.errors import FacecamError
from facecam.realtime.compose import CACHE_ENTRIES, ComposeSettings, ImageCache
from facecam.realtime.drawing import draw
from facecam.realtime.stats import RESERVOIR_SIZE, STAGES, Reservoir, RunStats

HOUR_AT_30_FPS = 30 * 3600
STATS_BOUND = 320 * 1024


def test_an_hour_of_30fps_statistics_stays_under_a_fixed_bound():
    rng = np.random.default_rng(0)
    # made before tracing starts: only what RunStats itself holds is measured
    values = rng.uniform(0, 100, HOUR_AT_30_FPS).tolist()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        stats = RunStats()
        for value in values:
            for stage in STAGES:
                stats.stage_ms[stage].append(value)
            stats.latency_ms.append(value)
            stats.frames += 1
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < STATS_BOUND, f"RunStats holds {held / 1024:.0f} KiB after an hour of frames"
    assert stats.nbytes() == (len(STAGES) + 1) * RESERVOIR_SIZE * 8
    assert all(len(r.kept) == RESERVOIR_SIZE and r.count == HOUR_AT_30_FPS for r in stats.stage_ms.values())
    # the figures are still right: a uniform 0..100 stream has its median at 50, its p95 at 95
    assert stats.latency_ms.median() == pytest.approx(50, abs=3)
    assert stats.latency_ms.percentile(95) == pytest.approx(95, abs=1.5)
    assert stats.latency_ms.mean == pytest.approx(float(np.mean(values)))
    assert stats.latency_ms.max == max(values)
    assert f"latency p50 {stats.latency_ms.median():.0f} ms" in stats.summary()


def test_a_short_run_reports_exact_percentiles():
    reservoir = Reservoir(capacity=64)
    values = np.random.default_rng(1).normal(20, 5, 64)
    for value in values:
        reservoir.append(value)
    assert reservoir.median() == pytest.approx(float(np.median(values)))
    assert reservoir.percentile(95) == pytest.approx(float(np.percentile(values, 95)))
    assert Reservoir().median() == 0.0 and len(Reservoir()) == 0


def test_the_reservoir_keeps_a_uniform_sample_of_the_whole_stream():
    # a run that speeds up half way (a cache warms, the GPU clocks up): the sample must hold both halves
    reservoir = Reservoir(capacity=1000)
    for i in range(100_000):
        reservoir.append(10.0 if i < 50_000 else 20.0)
    share_slow = float(np.mean(reservoir.kept == 10.0))
    assert 0.45 < share_slow < 0.55


def test_a_hundred_photo_sizes_leave_only_a_few_backgrounds_cached():
    rng = np.random.default_rng(2)
    background = rng.integers(0, 255, (300, 400, 3), np.uint8)
    settings = ComposeSettings(mode="replace", background=background)
    sizes = [(120 + 7 * i, 160 + 9 * i) for i in range(100)]  # 120x160 .. 813x1051
    largest = sizes[-1][0] * sizes[-1][1] * 3
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i, (height, width) in enumerate(sizes):
            frame = rng.integers(0, 255, (height, width, 3), np.uint8)
            alpha = np.zeros((height, width), np.float32)
            # the camera window may switch modes: the overlay tint shares the same bounded cache
            draw(frame, alpha, settings, "overlay" if i % 3 == 0 else "replace")
        del frame, alpha
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(settings._cache) == CACHE_ENTRIES
    assert settings._cache.nbytes <= CACHE_ENTRIES * largest
    assert held < CACHE_ENTRIES * largest + 256 * 1024, f"{held / 2**20:.1f} MiB held after 100 sizes"


def test_the_image_cache_drops_the_least_recently_used():
    cache = ImageCache(entries=2)
    made = []

    def make(key):
        made.append(key)
        return np.zeros((2, 2, 3), np.uint8)

    for key in ("a", "b", "a", "c", "a", "b"):
        cache.get(key, lambda key=key: make(key))
    # "a" was used before "c" came, so "b" went; "b" again is made again and "c" goes
    assert made == ["a", "b", "c", "b"] and len(cache) == 2


def test_a_new_background_is_drawn_at_once_not_the_cached_one():
    # a library caller changes the background while running: same frame size, so a cache keyed
    # by size alone would keep drawing the first one
    frame = np.zeros((60, 80, 3), np.uint8)
    alpha = np.zeros((60, 80), np.float32)  # no face: the output is the background itself
    settings = ComposeSettings(mode="replace", background=(0, 0, 255))
    assert (draw(frame, alpha, settings) == (0, 0, 255)).all()
    settings.background = (255, 0, 0)
    assert (draw(frame, alpha, settings) == (255, 0, 0)).all()
    image = np.full((30, 40, 3), 77, np.uint8)
    settings.background = image
    assert (draw(frame, alpha, settings) == 77).all()
    settings.background = np.full((30, 40, 3), 9, np.uint8)  # another array, same size
    assert (draw(frame, alpha, settings) == 9).all()


def test_a_bad_background_set_after_the_settings_were_made_is_a_clear_error():
    settings = ComposeSettings(mode="replace")
    settings.background = 128  # not a colour of three
    frame = np.zeros((20, 30, 3), np.uint8)
    with pytest.raises(FacecamError, match="background colour"):
        draw(frame, np.zeros((20, 30), np.float32), settings)
