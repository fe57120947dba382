"""User-facing errors and the one place that turns them into a CLI exit.

Every entry point wraps its `main` with :func:`cli_entry`, so bad input ends in one
line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable


class FacecamError(Exception):
    """Bad input or an unusable environment: the message names what was wrong and what is valid."""


class UnknownNameError(FacecamError, ValueError):
    """A name (model, mode, provider...) outside its registry; the message lists the valid ones."""


class CameraError(FacecamError, ConnectionError):
    """A camera that does not open or stopped delivering frames."""


#: Exit status for an interrupted run (the shell's convention for SIGINT).
EXIT_INTERRUPTED = 130


def cli_entry(main: Callable[..., int | None]) -> Callable[..., int]:
    """Wrap a CLI `main`: FacecamError -> `facecam: error: ...` on stderr and exit status 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            code = main(*args, **kwargs)
        except FacecamError as exc:
            print(f"facecam: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("facecam: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        return int(code or 0)

    return wrapper
