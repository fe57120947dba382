"""A shipped ``fast_unet`` ONNX file -> a training checkpoint that fine-tunes like the original.

Export folds every BatchNorm into the convolution before it, and the training checkpoints of
the shipped model were not kept. Fine-tuning needs them back, so this undoes the folding: the
folded weight ``W'`` and bias ``b'`` go back into the convolution and its BatchNorm, with the
BatchNorm's running statistics measured on real photos. With ``m`` and ``v`` the per-channel
mean and variance of ``W' x`` on those photos, the BatchNorm gets ``running_mean = m``,
``running_var = v``, ``weight = sqrt(v + eps)`` and ``bias = b' + m``: in eval mode it computes
exactly ``W' x + b'`` (the ONNX model), and in training mode, where a batch's statistics stand
in for ``m`` and ``v``, nearly so, so the first steps of a fine-tune start from the shipped model
instead of from a shock.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from facecam.errors import FacecamError
from facecam.model_file import checked_card
from facecam.training.models import FastUNet

#: photos whose activations give the BatchNorm statistics (more changes them by < 1%)
STAT_PHOTOS = 128


def _conv_order(model: nn.Module, size: int) -> list[tuple[nn.Conv2d, nn.BatchNorm2d | None]]:
    """The model's convolutions in the order the forward pass runs them, each with the
    BatchNorm that follows it in its block (None where none does)."""
    follows: dict[nn.Conv2d, nn.BatchNorm2d | None] = {}
    for module in model.modules():
        if isinstance(module, nn.Sequential):
            children = list(module)
            for conv, after in zip(children, children[1:] + [None], strict=True):
                if isinstance(conv, nn.Conv2d):
                    follows[conv] = after if isinstance(after, nn.BatchNorm2d) else None
    order: list[nn.Conv2d] = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: order.append(m)) for m in model.modules() if isinstance(m, nn.Conv2d)
    ]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, size, size))
    for hook in hooks:
        hook.remove()
    return [(conv, follows.get(conv)) for conv in order]


def _onnx_convs(graph: onnx.GraphProto) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Weight and bias of every Conv node, in graph order."""
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    convs = []
    for node in graph.node:
        if node.op_type == "Conv":
            bias = weights[node.input[2]] if len(node.input) > 2 and node.input[2] else None
            convs.append((weights[node.input[1]], bias))
    return convs


def load_folded(model: FastUNet, graph: onnx.GraphProto, size: int) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """Copy the ONNX weights into ``model``, each folded BatchNorm as an identity plus the
    folded bias (exact in eval mode). Returns the (conv, BatchNorm) pairs to re-measure."""
    torch_convs, onnx_convs = _conv_order(model, size), _onnx_convs(graph)
    if len(torch_convs) != len(onnx_convs):
        raise FacecamError(f"the ONNX graph has {len(onnx_convs)} convolutions, fast_unet {len(torch_convs)}")
    pairs = []
    for (conv, norm), (weight, bias) in zip(torch_convs, onnx_convs, strict=True):
        if tuple(conv.weight.shape) != weight.shape:
            raise FacecamError(f"ONNX weight {weight.shape} does not fit {tuple(conv.weight.shape)}; other width?")
        conv.weight.data = torch.from_numpy(weight.copy())
        folded_bias = torch.zeros(weight.shape[0]) if bias is None else torch.from_numpy(bias.copy())
        if norm is None:
            if conv.bias is not None:
                conv.bias.data = folded_bias
            elif bias is not None and np.abs(bias).max() > 0:
                raise FacecamError("the ONNX graph has a bias where fast_unet has none")
            continue
        norm.running_mean.zero_()
        norm.running_var.fill_(1 - norm.eps)
        norm.weight.data.fill_(1.0)
        norm.bias.data = folded_bias
        pairs.append((conv, norm))
    return pairs


def measure_statistics(model: nn.Module, pairs: list[tuple[nn.Conv2d, nn.BatchNorm2d]], batches) -> None:
    """Give each BatchNorm the mean/variance of its convolution's output on ``batches`` (normalised
    ``(N, 3, H, W)`` tensors) while keeping its eval-mode output unchanged."""
    sums = {conv: [0.0, 0.0, 0] for conv, _ in pairs}

    def record(conv, _inputs, output):
        x = output.detach().double()
        stats = sums[conv]
        stats[0] = stats[0] + x.sum(dim=(0, 2, 3))
        stats[1] = stats[1] + (x * x).sum(dim=(0, 2, 3))
        stats[2] += x.numel() // x.shape[1]

    hooks = [conv.register_forward_hook(record) for conv, _ in pairs]
    model.eval()
    with torch.no_grad():
        for batch in batches:
            model(batch)
    for hook in hooks:
        hook.remove()
    for conv, norm in pairs:
        total, squares, count = sums[conv]
        mean = total / count
        var = (squares / count - mean * mean).clamp_min(0)
        norm.running_mean.copy_(mean.float())
        norm.running_var.copy_(var.float())
        norm.weight.data = torch.sqrt(var + norm.eps).float()
        norm.bias.data = norm.bias.data + mean.float()


#: recovered logits may differ from the ONNX model's by float rounding only
RECOVER_ATOL = 1e-3


def _check_same_as(onnx_path: Path, model: nn.Module, card, normalised: torch.Tensor) -> None:
    """The recovered model must give the ONNX model's logits on a real photo (a convolution
    matched to the wrong weights would not)."""
    import onnxruntime as ort

    mean = torch.tensor(card.mean).view(1, 3, 1, 1) * 255
    std = torch.tensor(card.std).view(1, 3, 1, 1) * 255
    pixels = (normalised * std + mean).numpy().astype(np.float32)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    want = session.run(None, {session.get_inputs()[0].name: pixels})[0]
    with torch.no_grad():
        got = model.eval()(normalised).numpy()
    worst = float(np.abs(got - want).max())
    if worst > RECOVER_ATOL:
        raise FacecamError(f"the recovered model differs from {onnx_path} by {worst:.3g} in its logits; not written")


def recover_checkpoint(onnx_path: Path, data: Path, split: str = "train") -> dict:
    """The checkpoint of a shipped fast_unet ONNX file, with statistics from ``data``'s ``split``."""
    from facecam.training.augment import build_eval_transform
    from facecam.training.dataset import FaceSegDataset

    card = checked_card(onnx_path)
    if card.precision != "fp32":
        raise FacecamError(f"{onnx_path} is the {card.precision} twin; recover from the FP32 file")
    if card.model_name != "fast_unet":
        raise FacecamError(f"{onnx_path} is a {card.model_name or 'unnamed'} model; only fast_unet can be recovered")
    graph = onnx.load(str(onnx_path)).graph
    convs = _onnx_convs(graph)
    if not convs or convs[0][0].shape[1] != 3:
        raise FacecamError(f"{onnx_path} does not start with a 3-channel convolution")
    width = int(convs[0][0].shape[0])
    model = FastUNet(num_classes=len(card.class_names), width=width)
    size = card.input_size[0]
    pairs = load_folded(model, graph, size)
    dataset = FaceSegDataset(data, split, build_eval_transform(size), card.mean, card.std)
    count = min(STAT_PHOTOS, len(dataset))
    batches = (
        torch.stack([dataset[i][0] for i in range(start, min(start + 16, count))]) for start in range(0, count, 16)
    )
    measure_statistics(model, pairs, batches)
    _check_same_as(onnx_path, model, card, dataset[0][0][None])
    return {
        "model_name": "fast_unet",
        "num_classes": len(card.class_names),
        "model_kwargs": {"width": width},
        "state_dict": {k: v.clone() for k, v in model.state_dict().items()},
        "card": {
            "input_size": list(card.input_size),
            "mean": list(card.mean),
            "std": list(card.std),
            "class_names": list(card.class_names),
            "face_classes": list(card.face_classes),
        },
        "dataset": card.dataset,
        "metrics": dict(card.metrics),
    }


def run_recover(argv: list[str]) -> int:
    """``facecam-train recover``: write the checkpoint of a shipped fast_unet ONNX file."""
    from facecam.cli_args import OneLineErrorParser
    from facecam.training.checkpoint import save_checkpoint

    p = OneLineErrorParser(
        prog="facecam-train recover",
        description="Turn a shipped fast_unet .onnx (BatchNorm folded by export) back into a checkpoint that "
        "fine-tunes like the original (--init) and evaluates to the same figures.",
    )
    p.add_argument("--model", required=True, type=Path, help="the .onnx file (for example weights/facecam_face.onnx)")
    p.add_argument("--data", required=True, type=Path, help="a facecam-layout folder whose photos give the statistics")
    p.add_argument("--split", default="train", help=f"its split list (the first {STAT_PHOTOS} photos are used)")
    p.add_argument("--out", required=True, type=Path, help="checkpoint to write (must not exist)")
    a = p.parse_args(argv)
    if a.out.exists():
        raise FacecamError(f"{a.out} already exists; choose a new --out")
    save_checkpoint(recover_checkpoint(a.model, a.data, a.split), a.out)
    print(f"wrote {a.out} from {a.model}")
    return 0
