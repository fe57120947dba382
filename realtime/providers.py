"""Choosing the onnxruntime execution provider, predictably and without an error flood.

An explicit ``provider`` wins, and fails loudly when it cannot start. ``auto`` tries
TensorRT, then CUDA, then the CPU, and keeps the first that really starts: onnxruntime
quietly falls back to the CPU when a GPU provider fails to load, so the session's active
provider is checked, not assumed, and why the ones before it failed is kept (``fallback``).
GPU providers are only tried where an NVIDIA driver is present, which keeps a CPU machine
with onnxruntime-gpu free of CUDA load errors.

onnxruntime's log level is global to the process, so the library leaves it alone (a program
that uses facecam keeps its own); the command-line tools quieten it through
:func:`quiet_onnxruntime_log`, as every failure they report is in their own one-line error.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from facecam.errors import FacecamError, UnknownNameError
from facecam.model_card import ModelCard
from facecam.model_file import checked_card

#: CLI name -> onnxruntime provider name
PROVIDERS = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
PROVIDER_CHOICES = ("auto", *PROVIDERS)
GPU_PROVIDERS = frozenset({PROVIDERS["tensorrt"], PROVIDERS["cuda"]})
#: onnxruntime log severity: 3 = errors only (a session's own log), 4 = fatal only (the CLI's global level)
_QUIET = 4
_NORMAL = 3
#: why a GPU provider "did not start" when onnxruntime fell back to the CPU without an exception
SILENT_FALLBACK = (
    "onnxruntime fell back to the CPU (a CUDA, cuDNN or TensorRT library missing or of another version; "
    "FACECAM_DEBUG=1 shows onnxruntime's own log)"
)


@dataclass(frozen=True)
class ModelFiles:
    """The FP32 file of a model and its twins, if any: FP16 for GPU providers, INT8 for the face
    crops on the CPU (see :class:`facecam.realtime.segmenter.Segmenter`)."""

    fp32: Path
    fp16: Path | None = None
    int8: Path | None = None
    #: another model for the whole-frame passes that find faces (``NAME_finder.onnx``), when it
    #: finds small faces in a crowd better than this one, which segments every face in its crop
    finder: Path | None = None

    def for_provider(self, provider: str) -> Path:
        """FP16 on a GPU provider when it exists, else FP32 (FP16 on the CPU provider is slow)."""
        return self.fp16 if self.fp16 is not None and provider in GPU_PROVIDERS else self.fp32


@dataclass(frozen=True)
class OpenedSession:
    """What :func:`open_session` opened: the session, its active provider, the model file and card,
    and ``fallback``: why the providers tried before this one did not start ("" when none failed)."""

    session: object  # onnxruntime.InferenceSession
    provider: str
    path: Path
    card: ModelCard
    fallback: str = ""


def quiet_onnxruntime_log() -> None:
    """For command-line tools only: onnxruntime's global log shows fatal errors only, so probing
    a GPU provider that cannot start prints no flood of loader errors (the tool's own line says
    why it fell back). Never called by the library (see :func:`facecam.errors.cli_entry`)."""
    import onnxruntime as ort

    ort.set_default_logger_severity(_QUIET)


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
    """The onnxruntime providers to try, in order, for a ``provider`` choice.

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
            "install onnxruntime-gpu for cuda/tensorrt, or use provider 'cpu'"
        )
    if name in GPU_PROVIDERS and not driver:
        raise FacecamError(f"provider {requested} needs an NVIDIA GPU and driver, none found here; use provider 'cpu'")
    return [name]


def preload_gpu_libraries(candidates: list[str]) -> None:
    """Load the CUDA and cuDNN libraries that ``pip install onnxruntime-gpu[cuda,cudnn]`` puts in
    the ``nvidia`` site packages, before a GPU session opens. onnxruntime's CUDA provider names
    them without a search path, so without this step it finds them only through
    ``LD_LIBRARY_PATH`` (or a torch imported first). onnxruntime builds before 1.21 have no
    ``preload_dlls``. What it prints or warns is kept off the tool's output (``sys.stdout`` is
    redirected for the call), and a library it cannot find is left for the session to report.
    (Not yet run on a GPU machine: the one measured had its libraries on the path already.)"""
    import onnxruntime as ort

    if not GPU_PROVIDERS.intersection(candidates) or not hasattr(ort, "preload_dlls"):
        return
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), contextlib.suppress(Exception):
        warnings.simplefilter("ignore")
        ort.preload_dlls()


def usable_cores() -> int:
    """The cores this process may run on (a container's or taskset's share, not the machine's)."""
    affinity = getattr(os, "sched_getaffinity", None)  # Linux only
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


def pipeline_threads(requested: int, mode: str, camera: bool = False, cores: int | None = None) -> int:
    """onnxruntime's intra-op threads for a stream run through the threaded pipeline
    (``requested`` 0 = choose; ``cores``: the cores this run may use, all by default).

    The pipeline's own two worker threads (faces; upsampling and compose) already keep two
    cores busy, and splitting each model run over more threads costs CPU in hand-offs, so:
    - a live camera: one. The camera sets the pace, and what counts is the CPU a frame costs;
    - anonymize: every core (``cores`` when given, as a batch's job gets its share; else
      onnxruntime's own choice, one a physical core). Crowds make the faces step the slower one
      by far (the zoomed pass every 12 frames, a crop a face); on the group-1 clip, 2 cores, two
      threads gave 20.5-20.9 FPS against 17.5-17.6 with one;
    - the other modes: half the cores, leaving the rest to the compose step. Blur, 2 cores,
      alternating runs (``facecam-bench --predecode --no-encode``): 720p 8.5-9.5 ms of CPU a
      frame against 9.0-10.0 with two threads, at the same or more FPS (165-189 against
      161-179); d3.mp4 (512x512) 10.0-10.2 against 11.2-11.3, at 129-132 FPS both ways.

    Chosen once, for the mode a run starts in: a window's mode switch keeps them (speed only).
    """
    if requested:
        return requested
    if camera:
        return 1
    if mode == "anonymize":
        return cores or 0
    return max(1, (cores or usable_cores()) // 2)


def session_options(threads: int):
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


def trt_cache_folder() -> Path:
    """Where TensorRT keeps its built engines (building one takes a while the first time)."""
    return Path.home() / ".cache" / "facecam" / "trt"


def _provider_config(name: str) -> str | tuple[str, dict]:
    """The provider entry for onnxruntime; TensorRT's cache folder is made here, so a home that
    cannot hold it is a failure of that provider (``auto`` goes on to the next), not of the run."""
    if name == PROVIDERS["tensorrt"]:
        cache = trt_cache_folder()
        try:
            cache.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FacecamError(
                f"TensorRT's engine cache folder {cache} cannot be made ({exc.strerror or exc})"
            ) from exc
        # FP16 kernels and a cached engine
        return (name, {"trt_fp16_enable": True, "trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache)})
    return name


def _first_line(exc: BaseException, limit: int) -> str:
    message = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
    return message[:limit]


def new_session(path: Path, provider: str, threads: int = 0):
    """An onnxruntime session of ``path`` on ``provider`` (with the CPU behind a GPU provider, for
    the nodes it cannot run). Raises what onnxruntime raises, or FacecamError for TensorRT's cache."""
    import onnxruntime as ort

    chain = [_provider_config(provider)] + ([] if provider == PROVIDERS["cpu"] else [PROVIDERS["cpu"]])
    # the resolved path: external data is then looked for where checked_card looked
    return ort.InferenceSession(str(path.resolve()), session_options(threads), providers=chain)


def open_session(files: ModelFiles, requested: str = "auto", threads: int = 0) -> OpenedSession:
    """Open an InferenceSession for ``files`` on the first provider that starts.

    A missing, corrupt or unsafe model file (see :func:`facecam.model_file.checked_card`, run
    before onnxruntime reads it), or an explicit provider that does not start, raises
    FacecamError. With ``auto``, why each provider before the active one failed is in the
    result's ``fallback``. Changes no global onnxruntime setting.
    """
    import onnxruntime as ort

    candidates = candidate_providers(requested, ort.get_available_providers(), nvidia_driver_present())
    preload_gpu_libraries(candidates)
    failures = []
    for name in candidates:
        path = files.for_provider(name)
        card = checked_card(path)
        try:
            session = new_session(path, name, threads)
        except FacecamError as exc:  # ours, already one clear line (the TensorRT cache folder)
            if requested != "auto":
                raise
            failures.append(f"{name}: {exc}")
            continue
        except Exception as exc:  # onnxruntime raises several types for unreadable models
            if name == PROVIDERS["cpu"] or requested != "auto":
                raise FacecamError(f"cannot load model {path}: {_first_line(exc, 300)}") from exc
            failures.append(f"{name}: {_first_line(exc, 200)}")
            continue
        if session.get_providers()[0] == name:
            return OpenedSession(session, name, path, card, "; ".join(failures))
        failures.append(f"{name}: {SILENT_FALLBACK}")
        if requested != "auto":
            raise FacecamError(f"provider {requested} did not start on this machine: {SILENT_FALLBACK}; use 'cpu'")
    raise FacecamError("no execution provider started: " + "; ".join(failures))
