"""The process's memory allocator, set for video frames (command-line tools only).

Every frame makes and drops arrays of megabytes: the frame's halvings, its alpha, the blurred
background, the composed output. glibc's malloc hands blocks that large back to the system when
they are freed (by ``munmap``, or by trimming the top of a heap) and maps fresh pages for the next
frame's, and each fresh page costs a page fault when it is first written. Measured on this
project's 2-core machine, blur at 1920x1080 on one thread: about 4,900 page faults a frame,
9.8 ms of system CPU time a frame on top of 14 ms of work; with the settings below, none.

:func:`keep_freed_memory_for_cli` makes glibc keep freed memory for reuse instead: blocks under
:data:`MMAP_THRESHOLD` come from the heap, and a heap is never trimmed below
:data:`TRIM_THRESHOLD`. The process then holds its peak working set rather than returning it
between frames (the same memory, held instead of mapped again, frame after frame). The library
leaves the allocator alone: a program that uses facecam keeps its own settings, and can do the
same with glibc's environment variables ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_``.
Elsewhere than glibc (Windows, macOS, musl) nothing is changed.
"""

from __future__ import annotations

import ctypes
import sys

#: mallopt's parameter numbers (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: blocks under this come from the heap (glibc's largest allowed value on 64-bit; a 4K frame's
#: float alpha, 33 MB, is still mapped on its own)
MMAP_THRESHOLD = 32 * 1024 * 1024
#: free memory at a heap's top kept up to this much
TRIM_THRESHOLD = 1 << 30


def keep_freed_memory_for_cli() -> bool:
    """Set glibc's malloc to keep freed blocks for reuse (see the module docstring); True when it
    was set, False where the C library is not glibc's."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success; musl's stub returns 0 and changes nothing
    return mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
