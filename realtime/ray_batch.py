"""``facecam --videos ... --ray ADDRESS|auto|local``: the batch's files as Ray tasks.

Ray does the scheduling: one task per file, each asking for ``--ray-cpus`` CPUs and
``--ray-gpus`` GPUs, placed by Ray on whichever node has them free, retried by Ray if its worker
dies. Each task runs the same per-file job as ``--jobs`` (:func:`facecam.realtime.batch.process_file`),
which skips nothing itself: the driver checked the done records before submitting. Every node needs
facecam installed in the same environment, and the inputs, ``--out`` and a ``--model`` path at
the same place (a shared or network folder). Ray is imported only here, only when asked for:
``pip install "facecam[cluster]"``.
"""

from __future__ import annotations

import logging
import socket
import sys
from dataclasses import dataclass

from facecam.errors import FacecamError, one_line, stop_on_sigterm
from facecam.realtime.batch import FileResult, FileTask, process_file

#: seconds the driver waits for cancelled tasks to end after Ctrl-C (each stops at its next frame)
CANCEL_WAIT = 60


def import_ray():
    try:
        import ray
    except ImportError as exc:
        raise FacecamError('--ray needs Ray: pip install "facecam[cluster]" (on every node)') from exc
    return ray


def _file_task(task: FileTask) -> FileResult:
    """The body of each Ray task (a plain function of this module: every node imports it)."""
    return process_file(task)


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """A concrete ``HOST:PORT`` (or ``ray://HOST:PORT``) where nothing answers fails in seconds:
    Ray itself retries such an address for many minutes before it gives up."""
    if address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # not HOST:PORT: Ray says what is wrong with it
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise FacecamError(
            f"nothing answers at {address} ({exc.strerror or exc}); is `ray start --head` running there?"
        ) from exc


@dataclass
class Cluster:
    """The Ray module, joined; ``connected``: this process joined it (and so leaves it)."""

    ray: object
    connected: bool


def join(address: str, cpus: float, gpus: float) -> Cluster:
    """Join the cluster at ``address`` (``auto``: the one this machine belongs to; ``local``: a new
    one on this machine only) and check that a node can run a task of ``cpus`` and ``gpus``.
    A program that already called ``ray.init`` keeps its own connection."""
    check_reachable(address)
    ray = import_ray()
    cluster = Cluster(ray, connected=not ray.is_initialized())
    if cluster.connected:
        try:
            ray.init(address=address, logging_level=logging.WARNING)
        except Exception as exc:  # Ray raises ConnectionError, ValueError, RuntimeError... for a bad address
            hint = "; start one with `ray start --head`, or use --ray local" if address == "auto" else ""
            raise FacecamError(f"cannot join the Ray cluster at {address}: {one_line(exc)}{hint}") from exc
        stop_on_sigterm()  # ray.init puts its own SIGTERM handler in: a stop must still write the report
    try:
        resources = ray.cluster_resources()
        print(
            f"facecam: Ray cluster with {resources.get('CPU', 0):g} CPUs and {resources.get('GPU', 0):g} GPUs; "
            f"a task of {cpus:g} CPU and {gpus:g} GPU per file",
            file=sys.stderr,
        )
        if not any(_fits(node, cpus, gpus) for node in ray.nodes()):  # Ray would wait for ever
            raise FacecamError(
                f"no node of this Ray cluster can give a task {cpus:g} CPU and {gpus:g} GPU; "
                "lower --ray-cpus/--ray-gpus or add such a node"
            )
    except BaseException:
        leave(cluster)
        raise
    return cluster


def leave(cluster: Cluster) -> None:
    if cluster.connected:
        cluster.ray.shutdown()


def _result(ray, ref, task: FileTask) -> FileResult:
    """The task's result; a task Ray could not run (its worker died at each try) is failed."""
    try:
        return ray.get(ref)
    except ray.exceptions.TaskCancelledError:  # one that had started returns its own "interrupted"
        return FileResult(task.source, task.output, "not started")
    except ray.exceptions.RayError as exc:
        return FileResult(task.source, task.output, "failed", error=f"Ray: {one_line(exc)}")


def _fits(node: dict, cpus: float, gpus: float) -> bool:
    """Whether a node of ``ray.nodes()`` can run a task asking for ``cpus`` and ``gpus``."""
    have = node.get("Resources", {})
    return bool(node.get("Alive")) and have.get("CPU", 0) >= cpus and have.get("GPU", 0) >= gpus


def run_on_ray(cluster: Cluster, tasks: list[FileTask], cpus: float, gpus: float, on_result) -> None:
    """Submit every file at once and hand each result to ``on_result(task, result)`` as it ends.
    Ctrl-C cancels them all (a running one stops at its next frame, its frames kept) and is raised."""
    ray = cluster.ray
    remote = ray.remote(_file_task).options(num_cpus=cpus, num_gpus=gpus)
    owners = {remote.remote(task): task for task in tasks}
    pending = list(owners)
    try:
        while pending:
            ended, pending = ray.wait(pending, num_returns=1)
            for ref in ended:
                on_result(owners[ref], _result(ray, ref, owners[ref]))
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref)  # not force: the task gets a KeyboardInterrupt and finishes its output
        ended, _ = ray.wait(pending, num_returns=len(pending), timeout=CANCEL_WAIT)
        for ref in ended:
            on_result(owners[ref], _result(ray, ref, owners[ref]))
        raise
