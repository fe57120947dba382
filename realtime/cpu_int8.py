"""Whether this CPU runs a model's INT8 twin as exactly as it was checked (export/int8.py).

x86 CPUs without VNNI add pairs of 8-bit products into 16 bits before summing them; onnxruntime
takes another path there, and the twin is neither faster nor as exact. Measured on 2026-11-29 on
an AMD EPYC with AVX2 only, one thread: 96 / 128 / 160 px crops took 1.22 / 1.78 / 2.58 ms in
INT8 against 1.13 / 1.90 / 2.89 ms in FP32. On the sample clip's whole frame the INT8 mask agreed
with FP32's at IoU 0.936-0.939, where 0.95 was asked. The nine crowd clips scored against
CenterFace's boxes of every frame in anonymize (`scripts/anonymize_leaks.py --phases 0,3,6,9`)
left 286 face-frames uncovered with the twin and 243 with FP32 (faces in clear view 3 frames or
more: 43 and 41); `d3.mp4` flicker 0.0088 both ways, `talking_head.mp4` 0.0183 and 0.0181.

So the CPU provider segments the followed faces with the twin only where the CPU is not known
to lack VNNI (see :func:`int8_is_exact_here`).
"""

from __future__ import annotations

import functools
import platform
import subprocess
from pathlib import Path

#: the CPU feature names (Linux's /proc/cpuinfo flags, macOS's sysctl leaf-7 features, lower case)
#: that add 8-bit products exactly
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "avx512vnni", "avxvnni"})


@functools.cache
def int8_is_exact_here() -> bool:
    """False only on an x86 CPU whose features say AVX2 and no VNNI; True elsewhere (ARM, whose
    8-bit dot products are exact, and any CPU whose features cannot be read here: Windows)."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return True
    flags = cpu_flags()
    return flags is None or not lacks_vnni(flags)


def lacks_vnni(flags: set[str]) -> bool:
    """Whether a CPU with these feature ``flags`` (lower case) has AVX2 but no VNNI."""
    return "avx2" in flags and not flags & VNNI_FLAGS


def cpu_flags() -> set[str] | None:
    """The CPU's feature names in lower case (Linux, macOS); None where they cannot be read."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        cpuinfo = None
    if cpuinfo is not None:
        line = next((ln for ln in cpuinfo.splitlines() if ln.startswith("flags")), None)
        return set(line.split(":", 1)[1].lower().split()) if line and ":" in line else None
    if platform.system() == "Darwin":
        try:
            out = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.features", "machdep.cpu.leaf7_features"],
                capture_output=True,
                text=True,
                timeout=5,
                check=True,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return None
        return {word.replace(".", "_") for word in out.lower().split()}
    return None
