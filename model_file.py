"""Checks on an ONNX model file before onnxruntime opens it: it may come from anyone.

A shared ``.onnx`` cannot run Python code, but it can point its weights at any file on the
disk (ONNX "external data" names a path that onnxruntime then reads), carry a model card
that would make the runtime allocate absurd buffers, or promise inputs and outputs that its
graph does not have. :func:`checked_card` refuses all three with one line naming the file
and the field, reading the file with ``onnx`` only (no session is opened).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from facecam.errors import FacecamError
from facecam.model_card import ModelCard

#: a model file larger than this is refused before it is parsed (ours are 1-30 MB)
MAX_MODEL_BYTES = 2 << 30


def checked_card(path: Path) -> ModelCard:
    """The model card of the ONNX file at ``path``, once the file has passed every check.

    Raises FacecamError when the file is not ONNX, when any tensor's external data lies
    outside the file's own folder, when the card is missing or malformed, or when the graph's
    input or output does not match the card.
    """
    import onnx

    path = Path(path)
    try:
        size = path.resolve(strict=True).stat().st_size
    except (OSError, RuntimeError) as exc:  # RuntimeError: a link loop
        raise FacecamError(f"cannot read model {path} ({getattr(exc, 'strerror', None) or exc})") from exc
    if size > MAX_MODEL_BYTES:
        raise FacecamError(
            f"model {path} is {size >> 20} MiB, larger than any facecam model ({MAX_MODEL_BYTES >> 20} MiB)"
        )
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf and onnx raise several types for a file that is not ONNX
        raise FacecamError(f"cannot load model {path}: not an ONNX file ({type(exc).__name__})") from exc
    check_external_data(model, path)
    card = ModelCard.from_metadata({p.key: p.value for p in model.metadata_props}, source=str(path))
    check_io_matches_card(model, card, path)
    return card


def write_with_card(model, card: ModelCard, path: Path) -> None:
    """Save the ONNX ``model`` at ``path`` with ``card`` as its metadata (any earlier card
    replaced), after ``onnx.checker``'s full check: what the exports write (FP32, FP16, INT8)."""
    import onnx

    del model.metadata_props[:]
    for key, value in card.to_metadata().items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def check_external_data(model, path: Path) -> None:
    """Refuse tensors whose external data is not a regular file inside the model's own folder.

    The folder is the real one (links resolved): onnxruntime is handed the resolved path too
    (see ``providers.open_session``), so both look in the same place. A location with ``*``
    (onnxruntime's in-memory marker) or a NUL byte is refused outright.
    """
    folder = path.resolve().parent
    for tensor in all_tensors(model):
        if tensor.data_location != tensor.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        if not _inside_folder(location, folder):
            raise FacecamError(
                f"model {path}: tensor {tensor.name!r} reads its data from {location!r}, outside the model's "
                "folder or not a file there; refused (a model may only read files beside it)"
            )


def _inside_folder(location: str, folder: Path) -> bool:
    if not location or "*" in location or "\x00" in location or Path(location).is_absolute() or ":" in location:
        return False
    try:
        target = (folder / location).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):  # missing, a link loop, an unusable name
        return False
    return folder in target.parents and target.is_file()


def all_tensors(model) -> Iterator:
    """Every tensor a model holds: its graph's and its functions' (initializers, sparse ones,
    node attributes and subgraphs, recursively)."""
    yield from _graph_tensors(model.graph)
    for function in model.functions:
        yield from _node_tensors(function.node)


def _graph_tensors(graph) -> Iterator:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    yield from _node_tensors(graph.node)


def _node_tensors(nodes) -> Iterator:
    for node in nodes:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            sparse = list(attribute.sparse_tensors)
            if attribute.HasField("sparse_tensor"):
                sparse.append(attribute.sparse_tensor)
            for tensor in sparse:
                yield tensor.values
                yield tensor.indices
            if attribute.HasField("g"):
                yield from _graph_tensors(attribute.g)
            for sub in attribute.graphs:
                yield from _graph_tensors(sub)


def check_io_matches_card(model, card: ModelCard, path: Path) -> None:
    """One ``(N, 3, H, W)`` float32 input, H and W the card's size where the graph fixes them, and
    a ``(N, C, h, w)`` float32 output, C the card's class count (a segmenter's h, w are checked
    with one inference when it opens; a classifier's are 1 x 1)."""
    import onnx

    weights = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in weights]
    if len(inputs) != 1 or not model.graph.output:
        raise FacecamError(
            f"model {path}: expected one input and at least one output, found {len(inputs)} and "
            f"{len(model.graph.output)}"
        )
    float32 = onnx.TensorProto.FLOAT
    expected_hw = None if card.dynamic_size else tuple(card.input_size)
    for role, value, channels in (
        ("input", inputs[0], 3),
        ("output", model.graph.output[0], len(card.class_names)),
    ):
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
        problem = None
        if tensor.elem_type != float32:
            problem = f"is {onnx.TensorProto.DataType.Name(tensor.elem_type)}, not float32"
        elif len(dims) != 4:
            problem = f"has {len(dims)} dimensions, not 4 (N, C, H, W)"
        elif dims[1] is not None and dims[1] != channels:
            problem = f"has {dims[1]} channels; the model card says {channels}"
        elif role == "input" and expected_hw and all(dims[2:]) and tuple(dims[2:]) != expected_hw:
            problem = f"is {dims[2]}x{dims[3]}; the model card says {expected_hw[0]}x{expected_hw[1]}"
        if problem:
            raise FacecamError(f"model {path}: {role} {value.name!r} {problem}")
