"""User-facing errors and the one place that turns them into a CLI exit.

Every entry point wraps its `main` with :func:`cli_entry`, so bad input ends in one
line on stderr and a non-zero exit, never a traceback. Process-wide settings (onnxruntime's
log level, the SIGTERM handler of :func:`stop_on_sigterm`) are made only by the command-line
tools, never on import or by a library object: a program that uses facecam keeps its own.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class FacecamError(Exception):
    """Bad input or an unusable environment: the message names what was wrong and what is valid."""


class UnknownNameError(FacecamError, ValueError):
    """A name (model, mode, provider...) outside its registry; the message lists the valid ones."""


class CameraError(FacecamError, ConnectionError):
    """A camera that does not open or stopped delivering frames."""


#: Exit status for an interrupted run (the shell's convention: 128 + SIGINT).
EXIT_INTERRUPTED = 130


def stop_on_sigterm() -> None:
    """Make SIGTERM stop a run like Ctrl-C does (KeyboardInterrupt in the main thread), so
    outputs are finished properly when a service manager or ``kill`` ends facecam."""

    def handler(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


#: True while an interrupts_deferred block runs (main thread only): nested blocks add nothing.
_deferring = False


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C / SIGTERM until the block is done, then hand them to their own handlers.

    For steps that must not stop half way: a packet written to a file but not yet noted as
    written would be written again when the file is finished, and FFmpeg refuses the repeated
    time stamp. Signals with a Python handler (Ctrl-C's KeyboardInterrupt, stop_on_sigterm's)
    are held; ignored or default ones are left alone. A nested block holds nothing more; the
    outermost one delivers. When the block raises, its error goes on and the held signal is
    dropped: the run is stopping anyway, and the error says why. In other threads (where
    handlers cannot be set and Python delivers no signal) the block runs as it is.
    """
    global _deferring
    if _deferring or threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    held = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        if callable(signal.getsignal(sig)):
            held[sig] = signal.signal(sig, lambda signum, frame: received.append(signum))
    _deferring = True
    try:
        yield
    finally:
        # Both blocked while the handlers go back, so a signal arriving now waits for its own.
        # Windows has no signal masks: there the handlers go back unblocked (a Ctrl-C in that
        # instant goes to the held list's handler and is dropped; the run still stops soon after).
        mask = getattr(signal, "pthread_sigmask", None)
        if mask is not None:
            mask(signal.SIG_BLOCK, held)
        try:
            for sig, handler in held.items():
                signal.signal(sig, handler)
            _deferring = False
        finally:
            if mask is not None:
                mask(signal.SIG_UNBLOCK, held)
    if received:
        held[received[0]](received[0], None)


def quiet_onnxruntime_for_cli() -> None:
    """A command-line tool's onnxruntime logs fatal errors only: its own one-line error says what
    failed (a GPU provider that did not start included). With FACECAM_DEBUG set onnxruntime keeps
    its default log, which shows why a provider's libraries did not load."""
    if os.environ.get("FACECAM_DEBUG"):
        return
    from facecam.realtime.providers import quiet_onnxruntime_log  # onnxruntime only where a tool runs

    quiet_onnxruntime_log()


def one_opencv_thread_for_cli() -> None:
    """A command-line tool runs OpenCV on the thread that calls it. OpenCV's own pool spreads each
    resize and blur over the cores, but facecam's pipeline keeps them busy with its own threads,
    and the pool's hand-offs cost more CPU than they save time: blur at 720p from a 30 fps source
    took 32-34 ms of CPU a frame with the pool, 25-26 ms without, at the same latency.
    The library leaves the setting alone (a program that uses facecam keeps its own)."""
    import cv2

    cv2.setNumThreads(1)


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` as one line, its notes (:func:`add_note`) after it.

    torch's DataLoader re-raises a worker's exception with the worker's traceback folded
    into the message; the original message is its last line.
    """
    return "; ".join([_message(exc), *getattr(exc, "__notes__", ())])


def _message(exc: BaseException) -> str:
    lines = [ln for ln in str(exc).splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    if "Original Traceback" in str(exc):
        last = lines[-1]
        return last.split(": ", 1)[1] if ": " in last else last
    return " ".join(ln.strip() for ln in lines)


def add_note(error: BaseException, note: str) -> None:
    """``error.add_note(note)``, also on Python 3.10 (which has no add_note but keeps the attribute)."""
    notes = getattr(error, "__notes__", None)
    if not isinstance(notes, list):
        notes = []
        error.__notes__ = notes
    notes.append(note)


def close_during_error(error: BaseException, what: str, close: Callable[[], object]) -> None:
    """Run ``close`` (a cleanup in a ``finally`` or ``except``) while ``error`` is on its way out.

    A failure of ``close`` must not replace ``error``, which says why the run stopped: it is added
    to ``error`` as a note ("``what`` failed too: ...") and ``error`` goes on. Ctrl-C is not caught.
    """
    try:
        close()
    except Exception as exc:
        add_note(error, f"{what} failed too: {_message(exc)}")


def cli_process_settings() -> None:
    """The CPU and log settings of the tools' processes (and of the worker processes they start):
    onnxruntime's global log quietened, OpenCV on the calling thread, glibc's malloc keeping
    freed memory (see realtime/memory.py). The library leaves all three alone."""
    quiet_onnxruntime_for_cli()
    one_opencv_thread_for_cli()
    from facecam.realtime.memory import keep_freed_memory_for_cli  # glibc only; see there

    keep_freed_memory_for_cli()


def cli_entry(main: Callable[..., int | None]) -> Callable[..., int]:
    """Wrap a CLI `main`: one line on stderr and a non-zero exit instead of a traceback.

    FacecamError (bad input) exits 2; Ctrl-C / SIGTERM exit 130; anything else is a bug,
    reported in one line (with the traceback when FACECAM_DEBUG=1) and exits 1. onnxruntime's
    global log is quietened for the tool (see :func:`quiet_onnxruntime_for_cli`), OpenCV runs on
    the calling thread and glibc's malloc keeps freed memory (the CPU settings of the tools).
    """

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            cli_process_settings()
            code = main(*args, **kwargs)
        except FacecamError as exc:
            print(f"facecam: error: {one_line(exc)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("facecam: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except Exception as exc:
            if os.environ.get("FACECAM_DEBUG"):
                raise
            message = "; ".join([str(exc).splitlines()[0] if str(exc) else "", *getattr(exc, "__notes__", ())])
            print(
                f"facecam: unexpected error: {type(exc).__name__}: {message} "
                "(run with FACECAM_DEBUG=1 for the traceback, and please report it)",
                file=sys.stderr,
            )
            return 1
        return int(code or 0)

    return wrapper
