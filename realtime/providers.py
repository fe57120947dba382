"""Choosing the onnxruntime execution provider, predictably and without an error flood.

An explicit ``--provider`` wins, and fails loudly when it cannot start. ``auto`` tries
TensorRT, then CUDA, then the CPU, and keeps the first that really starts: onnxruntime
quietly falls back to the CPU when a GPU provider fails to load, so the session's active
provider is checked, not assumed. GPU providers are only tried where an NVIDIA driver is
present, which keeps a CPU machine with onnxruntime-gpu free of CUDA load errors.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import TYPE_CHECKING

from facecam.errors import FacecamError, UnknownNameError
from facecam.model_file import checked_card

if TYPE_CHECKING:
    from facecam.realtime.segmenter import ModelFiles

#: CLI name -> onnxruntime provider name
PROVIDERS = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
PROVIDER_CHOICES = ("auto", *PROVIDERS)
GPU_PROVIDERS = frozenset({PROVIDERS["tensorrt"], PROVIDERS["cuda"]})
#: onnxruntime log severity while probing providers: 3 = errors only, 4 = fatal only
_QUIET = 4
_NORMAL = 3


def nvidia_driver_present() -> bool:
    """Whether the CUDA driver library loads (no driver, no GPU provider can start)."""
    try:
        ctypes.CDLL("libcuda.so.1")
        return True
    except OSError:
        try:
            ctypes.CDLL("nvcuda.dll")
            return True
        except OSError:
            return False


def candidate_providers(requested: str, available: list[str], driver: bool) -> list[str]:
    """The onnxruntime providers to try, in order, for a ``--provider`` choice.

    Pure: ``available`` is ``onnxruntime.get_available_providers()``, ``driver`` whether an
    NVIDIA driver is present. An explicit choice that cannot work raises FacecamError.
    """
    if requested not in PROVIDER_CHOICES:
        raise UnknownNameError(f"unknown provider {requested!r}; valid: {', '.join(PROVIDER_CHOICES)}")
    if requested == "auto":
        gpu = [PROVIDERS[n] for n in ("tensorrt", "cuda") if PROVIDERS[n] in available] if driver else []
        return [*gpu, PROVIDERS["cpu"]]
    name = PROVIDERS[requested]
    if name not in available:
        raise FacecamError(
            f"provider {requested} is not in this onnxruntime build (available: {', '.join(available)}); "
            "install onnxruntime-gpu for cuda/tensorrt, or use --provider cpu"
        )
    if name in GPU_PROVIDERS and not driver:
        raise FacecamError(f"provider {requested} needs an NVIDIA GPU and driver, none found here; use --provider cpu")
    return [name]


def _session_options(threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.log_severity_level = _NORMAL
    # onnxruntime's worker threads spin-wait between runs by default; on a small CPU that burns
    # the cores the decode, smoothing and compose threads need (measured: 1.3x the pipeline FPS
    # on 2 cores with spinning off).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def _provider_config(name: str) -> str | tuple[str, dict]:
    if name == PROVIDERS["tensorrt"]:
        # FP16 kernels and a cached engine: building a TensorRT engine takes a while the first time.
        cache = Path.home() / ".cache" / "facecam" / "trt"
        cache.mkdir(parents=True, exist_ok=True)
        return (name, {"trt_fp16_enable": True, "trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache)})
    return name


def open_session(files: ModelFiles, requested: str = "auto", threads: int = 0):
    """Open an InferenceSession for ``files`` on the first provider that starts.

    Returns ``(session, active provider name, model path, model card)``. A missing, corrupt or
    unsafe model file (see :func:`facecam.model_file.checked_card`, run before onnxruntime
    reads it), or an explicit provider that does not start, raises FacecamError.
    """
    import onnxruntime as ort

    candidates = candidate_providers(requested, ort.get_available_providers(), nvidia_driver_present())
    failures = []
    for name in candidates:
        path = files.for_provider(name)
        card = checked_card(path)
        chain = [_provider_config(name)] + ([] if name == PROVIDERS["cpu"] else [PROVIDERS["cpu"]])
        ort.set_default_logger_severity(_QUIET if name != candidates[-1] else _NORMAL)
        try:
            # the resolved path: external data is then looked for where checked_card looked
            session = ort.InferenceSession(str(path.resolve()), _session_options(threads), providers=chain)
        except Exception as exc:  # onnxruntime raises several types for unreadable models
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if name == PROVIDERS["cpu"] or requested != "auto":
                raise FacecamError(f"cannot load model {path}: {message[:300]}") from exc
            failures.append(f"{name}: {message[:120]}")
            continue
        finally:
            ort.set_default_logger_severity(_NORMAL)
        if session.get_providers()[0] == name:
            return session, name, path, card
        failures.append(f"{name}: did not start")
        if requested != "auto":
            raise FacecamError(f"provider {requested} did not start on this machine; use --provider cpu")
    raise FacecamError("no execution provider started: " + "; ".join(failures))
