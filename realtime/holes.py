"""Holes in a face mask: how much of a face the mask leaves out, and closing the small pockets.

Pure functions of their arguments, not wired into the pipeline:

- :func:`hole_share` / :func:`blob_hole_shares`: the hole metric of
  ``../shared/anchors/mask_holes.py`` (the share of a face's filled outline that the mask
  leaves out: a cheek, lips or a patch of neck missing inside the face);
- :func:`close_pockets`: fills pockets enclosed by one face, small ones only, never joining
  two faces or painting an occluder that reaches in from outside the face.

Masks may be ``bool``, ``uint8`` 0..255 (face > 127, as the mask videos and ``Segmenter.process``
give) or float 0..1 (face > 0.5, as ``Segmenter.probability`` gives), each ``(H, W)``.
"""

from __future__ import annotations

import cv2
import numpy as np

from facecam.face import is_face

#: a pocket is filled only when its area is at most this share of its face blob's area
MAX_POCKET_SHARE = 0.15
#: a pocket counts as enclosed only by a wall at least this thick, as a share of the face blob's
#: size (the square root of its area), and at least 3 px: a thin line of face drawn across a
#: hand or between two faces (one or two pixels of a blurry edge) does not enclose anything
MIN_WALL_SHARE = 0.03


def face_pixels(mask: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool / uint8 0..255 / float 0..1 mask -> ``(H, W) bool`` face pixels (>= 128, or
    :func:`facecam.face.is_face` for a probability)."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"a mask is (H, W), got shape {mask.shape}")
    if mask.dtype == bool:
        return mask
    if mask.dtype == np.uint8:
        return mask > 127
    if np.issubdtype(mask.dtype, np.floating):
        return is_face(mask)
    raise ValueError(f"a mask is bool, uint8 0..255 or float 0..1, got {mask.dtype}")


def _filled(blob: np.ndarray) -> np.ndarray:
    """``(H, W) uint8`` 0/1 -> ``(H, W) bool``: everything inside the blob's outer outlines."""
    contours, _ = cv2.findContours(blob, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros_like(blob)
    cv2.drawContours(filled, contours, -1, 1, -1)
    return filled > 0


def blob_hole_shares(mask: np.ndarray, min_area: int = 1) -> list[tuple[int, float]]:
    """Each face blob (8-connected) of at least ``min_area`` pixels, largest first ->
    ``(area, hole share)``: the share of its filled outline that the mask leaves out."""
    face = face_pixels(mask)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(face.astype(np.uint8), connectivity=8)
    out = []
    for k in 1 + np.argsort(-stats[1:, cv2.CC_STAT_AREA], kind="stable"):
        area = int(stats[k, cv2.CC_STAT_AREA])
        if area < min_area:
            break
        x, y, w, h = stats[k, :4]
        blob = (labels[y : y + h, x : x + w] == k).astype(np.uint8)
        filled = _filled(blob)
        out.append((area, float((filled & ~face[y : y + h, x : x + w]).sum()) / float(filled.sum())))
    return out


def hole_share(mask: np.ndarray) -> float | None:
    """The largest face blob's hole share (``../shared/anchors/mask_holes.py``'s definition): the
    share of its filled outer outline that is not face. None when the mask has no face pixel.

    ``mask``: ``(H, W)`` bool, uint8 0..255 (face > 127) or float 0..1 (face > 0.5).
    """
    shares = blob_hole_shares(mask)
    return shares[0][1] if shares else None


def close_pockets(
    mask: np.ndarray, max_share: float = MAX_POCKET_SHARE, min_wall: float = MIN_WALL_SHARE
) -> np.ndarray:
    """Fill the pockets a face mask leaves inside one face; returns a new mask like ``mask``.

    ``mask``: ``(H, W)`` bool, uint8 0..255 (face > 127) or float32/float64 0..1 probability
    (face > 0.5). Returns the same shape and dtype, with the filled pixels set to True, 255 or
    1.0 and every other pixel unchanged.

    A pocket is a 4-connected region inside the outer outline of one face blob (8-connected)
    that is not that blob: non-face pixels, and any specks of face that float in them (a
    face's own fragments; they are left as they are). Each blob is filled on its own, so a gap
    between two blobs is never a pocket and two faces are never joined; a region open to the
    frame's edge is outside every outline (the face may go on beyond the frame). A pocket's
    non-face pixels are filled only when:

    - its area is at most ``max_share`` of that blob's area (a large enclosed region, such as
      a hand held over the middle of a face, is left);
    - it is still enclosed when the blob is opened by a square of side ``max(3, min_wall *
      sqrt(blob area))`` px: the wall around it is that thick everywhere. An occluder that
      reaches in from the face's outer edge (a hand, a microphone) is open to the outside,
      or enclosed only by a sliver of face painted across its end; either way it stays
      unpainted, as does a gap between two faces that one blob joins by a thin bridge.
    """
    face = face_pixels(mask)
    out = np.array(mask, copy=True)
    # only the faces' bounding box is looked at: a blob, its outline and its pockets lie inside
    # it, so the result is the same as over the whole mask, for a fraction of the pixels
    x, y, w, h = cv2.boundingRect(face.astype(np.uint8))
    if w == 0 or h == 0:
        return out
    box = (slice(y, y + h), slice(x, x + w))
    fill = _pockets_to_fill(face[box], max_share, min_wall)
    part = out[box]
    if out.dtype == bool:
        part[fill] = True
    elif out.dtype == np.uint8:
        part[fill] = 255
    else:
        part[fill] = 1.0
    return out


def _pockets_to_fill(face: np.ndarray, max_share: float, min_wall: float) -> np.ndarray:
    """``(H, W) bool`` face pixels -> ``(H, W) bool``: the non-face pixels of the pockets
    :func:`close_pockets` fills."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(face.astype(np.uint8), connectivity=8)
    fill = np.zeros_like(face)
    for k in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[k])
        if w < 3 or h < 3:
            continue
        blob = (labels[y : y + h, x : x + w] == k).astype(np.uint8)
        holes = _filled(blob) & (blob == 0)
        if not holes.any():
            continue
        side = max(3, int(round(min_wall * np.sqrt(area))))
        opened = cv2.morphologyEx(blob, cv2.MORPH_OPEN, np.ones((side, side), np.uint8))
        walled = _filled(opened)
        n, pockets, pstats, _ = cv2.connectedComponentsWithStats(holes.astype(np.uint8), connectivity=4)
        for p in range(1, n):
            if pstats[p, cv2.CC_STAT_AREA] > max_share * area:
                continue
            pocket = pockets == p
            if walled[pocket].all():
                fill[y : y + h, x : x + w] |= pocket
    return fill & ~face
