"""The hole metric and the pocket-closing post-process (facecam.realtime.holes)."""

from __future__ import annotations

import importlib.util

import cv2
import numpy as np
import pytest
from conftest import SHARED_DATA

from facecam.realtime.holes import blob_hole_shares, close_pockets, hole_share

ANCHOR = SHARED_DATA.parent / "anchors" / "mask_holes.py"


def face(shape=(120, 160), centre=(80, 60), axes=(35, 45)) -> np.ndarray:
    """An (H, W) uint8 0/255 mask with one elliptic face."""
    mask = np.zeros(shape, np.uint8)
    cv2.ellipse(mask, centre, axes, 0, 0, 360, 255, -1)
    return mask


def test_hole_share_of_known_pockets():
    mask = np.zeros((100, 100), np.uint8)
    mask[20:60, 20:60] = 255  # 1600 px outline
    assert hole_share(mask) == 0.0
    mask[30:34, 30:34] = 0  # 16 px pocket
    assert hole_share(mask) == pytest.approx(16 / 1600)
    mask[40:50, 40:50] = 0  # and 100 more
    assert hole_share(mask) == pytest.approx(116 / 1600)
    # the same as bool and as a probability
    assert hole_share(mask > 127) == pytest.approx(116 / 1600)
    assert hole_share(mask.astype(np.float32) / 255 * 0.9) == pytest.approx(116 / 1600)
    # a notch open to the outside is not a hole; a smaller second face does not change the figure
    mask[20:25, 50:52] = 0
    mask[70:90, 70:90] = 255
    mask[75:80, 75:80] = 0
    assert hole_share(mask) == pytest.approx(116 / (1600 - 10))
    shares = blob_hole_shares(mask)
    assert [a for a, _ in shares] == [1600 - 10 - 116, 400 - 25]
    assert shares[1][1] == pytest.approx(25 / 400)
    assert hole_share(np.zeros((10, 10), np.uint8)) is None and blob_hole_shares(np.zeros((5, 5), bool)) == []


@pytest.mark.skipif(not ANCHOR.is_file(), reason="../shared/anchors/mask_holes.py not present")
def test_hole_share_is_the_anchors_definition():
    spec = importlib.util.spec_from_file_location("mask_holes", ANCHOR)
    anchor = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(anchor)
    rng = np.random.default_rng(0)
    for _ in range(30):
        mask = face(axes=(int(rng.integers(10, 60)), int(rng.integers(10, 50))))
        for _ in range(int(rng.integers(0, 6))):
            x, y = int(rng.integers(30, 130)), int(rng.integers(10, 110))
            cv2.circle(mask, (x, y), int(rng.integers(1, 12)), int(rng.choice([0, 255])), -1)
        noisy = np.clip(mask.astype(int) + rng.integers(-100, 100, mask.shape), 0, 255).astype(np.uint8)
        assert hole_share(noisy) == anchor.hole_share(noisy)


def test_a_small_pocket_is_filled_in_every_mask_type():
    mask = face()
    mask[55:63, 70:80] = 0  # a cheek left out: 80 px of a ~4,900 px face
    assert hole_share(mask) > 0.01
    closed = close_pockets(mask)
    assert closed.dtype == np.uint8 and hole_share(closed) == 0.0
    assert (closed[55:63, 70:80] == 255).all() and (closed[mask > 0] == 255).all()
    assert (closed[face() == 0] == 0).all()  # nothing outside the face
    as_bool = close_pockets(mask > 0)
    assert as_bool.dtype == bool and (as_bool == (closed > 0)).all()
    prob = mask.astype(np.float32) / 255 * 0.8 + 0.1
    as_prob = close_pockets(prob)
    assert as_prob.dtype == np.float32 and (as_prob[55:63, 70:80] == 1.0).all()
    untouched = np.ones(prob.shape, bool)
    untouched[55:63, 70:80] = False
    assert (as_prob[untouched] == prob[untouched]).all()  # the rest of the probability is kept as it is
    assert close_pockets(mask) is not mask and (mask[55:63, 70:80] == 0).all()  # the input is not changed


def test_two_touching_faces_stay_apart():
    """Two faces side by side touching at the hair-line and the chin: one blob around a small gap."""
    mask = np.zeros((120, 200), np.uint8)
    cv2.ellipse(mask, (70, 60), (28, 40), 0, 0, 360, 255, -1)
    cv2.ellipse(mask, (130, 60), (28, 40), 0, 0, 360, 255, -1)
    mask[28:30, 75:126] = 255  # hair-line contact
    mask[90:92, 75:126] = 255  # chin contact
    assert cv2.connectedComponents((mask > 0).astype(np.uint8))[0] == 2  # one blob
    gap = mask == 0
    gap[:30] = gap[90:] = False
    gap[:, :80] = gap[:, 121:] = False
    share = hole_share(mask)
    assert share == pytest.approx(gap.sum() / (gap.sum() + (mask > 0).sum()))  # the metric sees one holed face
    assert share < 0.15  # small enough to pass the size limit: the contact's thinness keeps it open
    closed = close_pockets(mask)
    assert (closed[gap] == 0).all()
    # two separate faces with a pocket each: both pockets filled, the space between them kept
    apart = np.zeros((120, 200), np.uint8)
    cv2.ellipse(apart, (70, 60), (28, 40), 0, 0, 360, 255, -1)
    cv2.ellipse(apart, (130, 60), (28, 40), 0, 0, 360, 255, -1)
    apart[55:60, 65:70] = apart[55:60, 125:130] = 0
    closed = close_pockets(apart)
    assert (closed[55:60, 65:70] == 255).all() and (closed[55:60, 125:130] == 255).all()
    assert (closed[:, 99:101] == 0).all()


def test_a_hand_in_front_of_a_face_is_not_painted():
    base = face()  # its right edge is at x = 115
    hand = np.zeros_like(base)
    hand[48:78, 112:140] = 255  # the palm, beside the face
    for y in (52, 60, 68):
        hand[y : y + 5, 92:112] = 255  # three fingers reaching in over the cheek
    assert ((hand > 0) & (base > 0)).sum() < 0.1 * (base > 0).sum()  # small: the size limit would let it through
    mask = base.copy()
    mask[hand > 0] = 0
    mask[40:45, 60:65] = 0  # and one real pocket on the other cheek
    for max_share in (0.15, 1.0):
        closed = close_pockets(mask, max_share=max_share)
        assert (closed[hand > 0] == 0).all()
        assert (closed[40:45, 60:65] == 255).all()
    # the model paints a one-pixel sliver of face along the face's outline across the fingers:
    # they are then enclosed, but only by that sliver, so they stay unpainted
    sliver = mask.copy()
    edge = (cv2.dilate(base, np.ones((3, 3), np.uint8)) > 0) & (cv2.erode(base, np.ones((3, 3), np.uint8)) == 0)
    sliver[edge & (hand > 0)] = 255
    assert hole_share(sliver) > hole_share(mask)  # the fingers now count as a hole for the metric
    for max_share in (0.15, 1.0):
        closed = close_pockets(sliver, max_share=max_share)
        assert (closed[(hand > 0) & ~edge] == 0).all()
        assert (closed[40:45, 60:65] == 255).all()


def test_a_large_enclosed_region_is_left_alone():
    mask = face()
    cv2.ellipse(mask, (80, 60), (18, 22), 0, 0, 360, 0, -1)  # a hand held over the middle: ~25% of the face
    inside = face(axes=(18, 22)) > 0
    assert (close_pockets(mask)[inside] == 0).all()
    assert (close_pockets(mask, max_share=0.5)[inside] == 255).all()  # the limit is what keeps it


def test_specks_of_face_inside_a_pocket_do_not_stop_it_being_filled():
    mask = face(axes=(50, 55))
    cv2.circle(mask, (80, 60), 8, 0, -1)
    mask[59:61, 79:81] = 255  # a speck the model's soft edge left in the pocket: a blob of its own
    mask[55, 76] = 200
    assert cv2.connectedComponents((mask > 127).astype(np.uint8))[0] == 4
    closed = close_pockets(mask)
    assert hole_share(closed) == 0.0
    assert closed[55, 76] == 200 and (closed[52:69, 72:89][mask[52:69, 72:89] == 0] == 255).all()


def test_closing_looks_at_the_faces_box_only_and_gives_the_same_mask():
    # the same pockets filled whether the faces sit in a big empty frame or fill a small one
    rng = np.random.default_rng(4)
    for _ in range(20):
        face = np.zeros((60, 80), np.float32)
        for _ in range(rng.integers(1, 4)):
            cy, cx, ry, rx = rng.integers(10, 50), rng.integers(10, 70), rng.integers(5, 15), rng.integers(5, 15)
            yy, xx = np.ogrid[:60, :80]
            face[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = 0.9
        face[rng.random((60, 80)) < 0.05] = 0.1  # specks and pockets
        big = np.zeros((200, 300), np.float32)
        big[70:130, 110:190] = face
        np.testing.assert_array_equal(close_pockets(big)[70:130, 110:190], close_pockets(face))
        assert not close_pockets(big)[:70].any() and not close_pockets(big)[130:].any()
