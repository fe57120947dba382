"""The full-frame pass of the face finder: where in a frame the faces are, at every scale.

    boxes = proposals(segmenter, frame, stream=True)                 # both scales
    boxes = blobs_at(segmenter, frame, size)                         # one scale
    boxes = tile_proposals(segmenter, frame, tile, zoomed)           # one tile of the zoomed pass

At the model's own size (224 px on the frame's long side) big faces come out whole; at
``zoom`` times the frame (see passes.finder_size) small faces get pixels, but a big face there
breaks into pieces (a cheek, a forehead), so the zoomed pass adds only what
passes.zoomed_additions keeps. Every box here is a proposal: :class:`facecam.realtime.faces.FaceFinder`
has the verifier judge it and each kept face segmented in its own crop.
"""

from __future__ import annotations

import numpy as np

from facecam.face import FACE_THRESHOLD
from facecam.realtime import processing
from facecam.realtime.crops import Box, face_blob_boxes
from facecam.realtime.fine_scan import blobs_in_tile, probability_in_border
from facecam.realtime.passes import FINDER_ZOOM, finder_size, zoomed_additions

#: the zoomed pass adds faces smaller than this share of the frame's long side that the first
#: pass did not find; a bigger blob only where no face of the first pass holds its centre (the
#: zoomed pass breaks a big face into pieces; see passes.zoomed_additions). Tiles of the zoomed
#: pass (a stream's, see fine_scan) add small ones only: a big blob is cut by the tile's edge,
#: and the first pass, every FIND_EVERY frames, finds big faces in a stream
SMALL_FACE_SHARE = 1 / 3
#: finder blobs smaller than this (finder pixels), or whose box is under MIN_FACE_SIDE frame
#: pixels, are noise: the smallest face to find (16 px) paints a blob of ~10 px or more
MIN_BLOB_PIXELS = 12
MIN_FACE_SIDE = 8


def zoomed_size(segmenter, frame_hw: tuple[int, int], zoom: float = FINDER_ZOOM) -> tuple[int, int] | None:
    """``(h, w)`` of the zoomed pass for a frame of ``frame_hw``, None when it would not be much
    larger than the pass at the model's own size (a small frame: that pass sees it all)."""
    zoomed = finder_size(frame_hw, int(max(segmenter.card.input_size)), zoom)
    if max(zoomed) < 1.5 * max(processing.inference_size(frame_hw, segmenter.card)):
        return None
    return zoomed


def blobs_at(
    segmenter,
    frame: np.ndarray,
    size: tuple[int, int],
    find_cores: bool = False,
    levels: processing.Halvings | None = None,
    border: bool = False,
) -> list[Box]:
    """Boxes (frame pixels) of the face blobs the finder model paints on the frame seen at
    ``size``, and their sure cores (``find_cores``, see crops.face_blob_boxes); ``border``: the
    frame seen inside fine_scan.EDGE_BORDER."""
    small = (levels or processing.Halvings(frame)).shrunk(size[::-1])
    tensor = processing.preprocess(small, size, segmenter.card)
    probability = probability_in_border(segmenter, tensor, (border,) * 4)
    ph, pw = probability.shape
    height, width = frame.shape[:2]
    boxes = face_blob_boxes(probability, (width / pw, height / ph), FACE_THRESHOLD, MIN_BLOB_PIXELS, find_cores)
    return [box for box in boxes if box.size >= MIN_FACE_SIDE]


def proposals(
    segmenter,
    frame: np.ndarray,
    zoom: float = FINDER_ZOOM,
    find_cores: bool = False,
    fine: bool = True,
    levels: processing.Halvings | None = None,
    stream: bool = False,
) -> list[Box]:
    """The whole full-frame pass: the blobs at the model's own size, plus (``fine``) the zoomed
    pass's small faces and unexplained big blobs. A ``stream`` sees the zoomed frame inside the
    edge border (see fine_scan.EDGE_BORDER); a photo does not."""
    height, width = frame.shape[:2]
    coarse = blobs_at(segmenter, frame, processing.inference_size((height, width), segmenter.card), find_cores, levels)
    zoomed = zoomed_size(segmenter, (height, width), zoom)
    if not fine or zoomed is None:
        return coarse
    zoomed_blobs = blobs_at(segmenter, frame, zoomed, find_cores, border=stream)
    return coarse + zoomed_additions(coarse, zoomed_blobs, SMALL_FACE_SHARE * max(height, width))


def tile_proposals(segmenter, frame: np.ndarray, tile, zoomed: tuple[int, int], find_cores: bool = False) -> list[Box]:
    """The small faces in one ``tile`` of the zoomed pass (see fine_scan): a big blob there is
    cut by the tile's edge, and the pass at the model's size finds big faces."""
    boxes = blobs_in_tile(segmenter, frame, tile, zoomed, MIN_BLOB_PIXELS, find_cores)
    small = SMALL_FACE_SHARE * max(frame.shape[:2])
    return [box for box in boxes if MIN_FACE_SIDE <= box.size < small]
