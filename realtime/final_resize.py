"""The model's last step, a bilinear resize of its logits to the input's size, done by OpenCV.

Why: the shipped models predict at a stride (FastUNet at 2) and end with an ONNX ``Resize`` to
the input's size. On the CPU onnxruntime spends a third of the model's time on that one
resize of three channels (and on reordering its larger output), while ``cv2.resize`` does
the same half-pixel bilinear resize in a tenth of the time. So on the CPU the graph is opened
without its final Resize and the logits are resized here. The result is checked once at
load against the model's own output (within 1e-3 on random pixels); a model it does not fit
(another kind of last step, or an output that differs) keeps its own graph.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

#: the largest difference, in logits, between the model's own output and the cut graph's
#: output resized here, on random pixels, for the cut graph to be used
AGREEMENT = 1e-3


def graph_without_final_resize(path: Path) -> bytes | None:
    """The model at ``path`` with its final bilinear, half-pixel ``Resize`` taken off (the graph's
    output is then the resize's input), serialised; None when the model does not end so or
    keeps its weights in external files."""
    import onnx
    from onnx.external_data_helper import uses_external_data

    model = onnx.load(str(path), load_external_data=False)
    graph = model.graph
    if len(graph.output) != 1 or any(uses_external_data(t) for t in graph.initializer):
        return None
    last = [node for node in graph.node if graph.output[0].name in node.output]
    if len(last) != 1 or last[0].op_type != "Resize":
        return None
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in last[0].attribute}
    if attributes.get("mode") != b"linear" or attributes.get("coordinate_transformation_mode") != b"half_pixel":
        return None
    if attributes.get("antialias", 0):
        return None
    graph.node.remove(last[0])
    del graph.output[:]
    graph.output.append(onnx.helper.make_tensor_value_info(last[0].input[0], onnx.TensorProto.FLOAT, None))
    return model.SerializeToString()


def resized_logits(logits: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """``(N, C, h, w) float32`` -> ``(N, C, H, W)``: each plane resized bilinearly with half-pixel
    centres (what ONNX ``Resize`` linear/half_pixel computes for an upscale)."""
    height, width = size_hw
    if logits.shape[2:] == (height, width):
        return logits
    out = np.empty((*logits.shape[:2], height, width), np.float32)
    for n in range(logits.shape[0]):
        for c in range(logits.shape[1]):
            out[n, c] = cv2.resize(logits[n, c], (width, height), interpolation=cv2.INTER_LINEAR)
    return out


def agrees(whole, cut, input_name: str, sizes: list[tuple[int, int]]) -> bool:
    """Whether session ``cut`` with :func:`resized_logits` gives session ``whole``'s logits on
    random pixels of each ``(h, w)`` of ``sizes`` (two sizes for a model of any size: the resize
    must follow the input)."""
    rng = np.random.default_rng(0)
    for height, width in sizes:
        pixels = (rng.random((1, 3, height, width)) * 255).astype(np.float32)
        try:
            want = whole.run(None, {input_name: pixels})[0]
            got = resized_logits(cut.run(None, {input_name: pixels})[0], (height, width))
        except Exception:  # onnxruntime's own types (a model that takes one size only): not cut
            return False
        if got.ndim != 4 or got.shape != want.shape or not np.abs(got - want).max() <= AGREEMENT:
            return False
    return True
