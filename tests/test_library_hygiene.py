"""The package as a library: no global state changed on import or construction, no Unix-only
call outside a guard, no import cycle; the command-line tools alone set process-wide things."""

from __future__ import annotations

import ast
import json
import signal
import subprocess
import sys
from pathlib import Path

import onnxruntime
import pytest

import facecam
from facecam.errors import cli_entry, interrupts_deferred, stop_on_sigterm

PACKAGE = Path(facecam.__file__).resolve().parent
NOT_PACKAGE = {"tests", "runs", "build", "facecam.egg-info", ".git", ".ci"}

#: process-wide state a library must leave alone, read in a fresh interpreter before and after
_NO_GLOBAL_STATE = """
import json, pkgutil, signal, sys
import cv2, onnxruntime
opencv_threads = cv2.getNumThreads()
calls = []
onnxruntime.set_default_logger_severity = lambda level: calls.append(level)  # onnxruntime has no getter
watched = (signal.SIGINT, signal.SIGTERM)
before = [repr(signal.getsignal(s)) for s in watched]
import facecam, facecam.realtime
for module in pkgutil.iter_modules(facecam.realtime.__path__, "facecam.realtime."):
    __import__(module.name)
from facecam.realtime.segmenter import Segmenter
from facecam.realtime.verifier import open_verifier
from facecam.realtime.pipeline import Pipeline
with Segmenter(sys.argv[1], provider="auto") as seg:
    verifier = open_verifier("facecam_verifier", "auto")
    Pipeline(facecam.FaceStream(segmenter=seg, verifier=verifier, mode="anonymize"))
after = [repr(signal.getsignal(s)) for s in watched]
opencv = [opencv_threads, cv2.getNumThreads()]
print(json.dumps({"before": before, "after": after, "log_level_calls": calls, "opencv_threads": opencv}))
"""


def test_import_and_construction_change_no_signal_handler_nor_onnxruntime_log(tiny_model):
    done = subprocess.run(
        [sys.executable, "-c", _NO_GLOBAL_STATE, str(tiny_model)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["after"] == seen["before"]
    assert seen["log_level_calls"] == []
    assert seen["opencv_threads"][0] == seen["opencv_threads"][1]  # OpenCV's pool left as it was


def test_the_cli_entry_runs_opencv_on_one_thread(monkeypatch):
    import cv2

    calls = []
    monkeypatch.setattr(cv2, "setNumThreads", lambda n: calls.append(n))
    assert cli_entry(lambda: 0)() == 0 and calls == [1]


def test_the_cli_entry_quietens_onnxruntime_unless_debugging(monkeypatch):
    calls = []
    monkeypatch.setattr(onnxruntime, "set_default_logger_severity", lambda level: calls.append(level))
    main = cli_entry(lambda: 0)
    monkeypatch.delenv("FACECAM_DEBUG", raising=False)
    assert main() == 0 and calls == [4]  # fatal only: the tool's own line says what failed
    monkeypatch.setenv("FACECAM_DEBUG", "1")
    assert main() == 0 and calls == [4]  # onnxruntime's own log shows why a provider did not load


def test_notes_of_an_error_are_in_the_cli_line(capsys):
    from facecam.errors import FacecamError, close_during_error

    def full_disk():
        raise OSError(28, "No space left")

    def main():
        error = FacecamError("inference failed on tiny.onnx")
        close_during_error(error, "finishing out.mp4", full_disk)
        raise error

    assert cli_entry(main)() == 2
    assert capsys.readouterr().err.strip() == (
        "facecam: error: inference failed on tiny.onnx; finishing out.mp4 failed too: [Errno 28] No space left"
    )


def test_signal_deferral_delivers_without_signal_masks(monkeypatch):
    """Windows has no pthread_sigmask (nor SIGHUP, SIGKILL): a Ctrl-C during a deferred block still
    arrives after it, and the handlers are put back."""
    for name in ("pthread_sigmask", "SIGHUP", "SIGKILL"):
        monkeypatch.delattr(signal, name, raising=False)
    before = signal.getsignal(signal.SIGINT)
    done = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            signal.raise_signal(signal.SIGINT)
            done.append("the block ran to its end")
    assert done == ["the block ran to its end"] and signal.getsignal(signal.SIGINT) is before


def test_sigterm_stops_like_ctrl_c_without_unix_only_signals(monkeypatch):
    for name in ("pthread_sigmask", "SIGHUP", "SIGKILL"):
        monkeypatch.delattr(signal, name, raising=False)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        stop_on_sigterm()
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
            with interrupts_deferred():
                signal.raise_signal(signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, previous)


#: calls and modules Windows does not have; a use must go through getattr(module, name, None)
UNIX_ONLY = {
    "os": {"statvfs", "fstatvfs", "fork", "forkpty", "getuid", "geteuid", "getgid", "setsid", "killpg", "getpgid"}
    | {"setpgrp", "nice", "getloadavg", "mkfifo", "chown", "lchown", "sched_getaffinity", "wait3", "wait4"},
    "signal": {"pthread_sigmask", "pthread_kill", "sigwait", "siginterrupt", "setitimer", "getitimer", "alarm"}
    | {"SIGHUP", "SIGKILL", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGQUIT", "SIGPIPE", "SIGCHLD", "SIGSTOP"},
}
UNIX_ONLY_MODULES = {"fcntl", "resource", "pwd", "grp", "termios", "tty", "pty", "posix", "syslog", "crypt"}


def _package_files() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if not NOT_PACKAGE & set(p.relative_to(PACKAGE).parts)]


def _unix_only_uses(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.attr in UNIX_ONLY.get(node.value.id, ()):
                found.append(f"{path.name}:{node.lineno} {node.value.id}.{node.attr}")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"{path.name}:{node.lineno} import {n}" for n in names if n.split(".")[0] in UNIX_ONLY_MODULES]
    return found


def test_no_unix_only_call_outside_a_guard():
    uses = [use for path in _package_files() for use in _unix_only_uses(path)]
    assert uses == []


def test_the_scan_finds_a_unix_only_call(tmp_path):
    code = tmp_path / "x.py"
    code.write_text("import os, signal, fcntl\nos.statvfs('.')\nsignal.pthread_sigmask(0, [])\n")
    assert len(_unix_only_uses(code)) == 3


def _module_name(path: Path) -> str:
    parts = ["facecam", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_level_imports(tree: ast.Module) -> set[str]:
    """Names imported at module level, those under ``if TYPE_CHECKING:`` and ``try:`` included
    (a type-only import still ties the two modules together for readers and tools)."""
    names: set[str] = set()
    blocks = [tree.body]
    while blocks:
        for node in blocks.pop():
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
                names.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, (ast.If, ast.Try)):
                blocks += [node.body, node.orelse, *(h.body for h in getattr(node, "handlers", ()))]
    return names


def _import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles, done = [], set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycles.append(path[path.index(module) :] + [module])
            return
        if module in done:
            return
        done.add(module)
        for other in sorted(graph[module]):
            visit(other, path + [module])

    for module in sorted(graph):
        visit(module, [])
    return cycles


def test_no_import_cycle_between_the_package_modules():
    modules = {_module_name(p): p for p in _package_files()}
    graph = {
        name: {m for m in _module_level_imports(ast.parse(path.read_text())) if m in modules and m != name}
        for name, path in modules.items()
    }
    assert _import_cycles(graph) == []
    assert _import_cycles({"a": {"b"}, "b": {"a"}}) == [["a", "b", "a"]]
