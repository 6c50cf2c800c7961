"""dask.distributed as the engine of blockwise and many-file jobs.

:class:`ClusterChoice` says where work runs: a ``LocalCluster`` the job
starts and stops itself (the default: workers and threads chosen for this
machine), or an existing scheduler by address (``dask scheduler`` with
``dask worker`` processes, or a dask-jobqueue SLURM/LSF cluster).
:func:`engine` opens it; :func:`run_tasks` submits one task per item and
yields as they finish, checking the job's cancel token every 50 ms.

Each worker holds one loaded model: jobs send the model to the workers once
(``Client.scatter(broadcast=True)``) or, for a model named by path, load it
on the worker at its first task and keep it (:func:`worker_model`).
"""
from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import psutil
from distributed import Client, Future, LocalCluster, as_completed

from napari_dlmicro.core.errors import Cancelled, UserError
from napari_dlmicro.core.runtime.cancel import NEVER, CancelToken, call_abandoning

CONNECT_TIMEOUT_S = 10
BYTES_PER_WORKER = 3 << 30  # a model, a block of 1024² with its halo, and the network's activations
RETRIES = 2  # a task that raises is tried this many more times (a dead worker's tasks are redone anyway)


@dataclass(frozen=True)
class ClusterChoice:
    """Local workers (``workers``/``threads``, None: chosen for the machine) or a ``scheduler`` address."""

    workers: int | None = None
    threads: int | None = None
    scheduler: str | None = None
    processes: bool = True  # False: workers are threads of this process (tests, small jobs)

    def __post_init__(self) -> None:
        if self.scheduler and self.workers:
            raise UserError("both a scheduler address and a number of local workers were given",
                            "use --workers N for local workers or --scheduler ADDRESS for a cluster, not both")
        if self.workers is not None and self.workers < 1:
            raise UserError(f"--workers {self.workers} is not a number of workers", "give 1 or more")


def local_layout(cores: int | None = None, memory: int | None = None) -> tuple[int, int]:
    """``(workers, torch threads per worker)`` for this machine: a worker per two cores, memory allowing."""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    memory = memory or psutil.virtual_memory().available
    workers = max(1, min(max(1, cores // 2), memory // BYTES_PER_WORKER))
    return int(workers), max(1, cores // workers)


@dataclass
class Engine:
    """An open client, where its dashboard is, and whether the job started the cluster itself."""

    client: Client
    dashboard: str | None
    own: bool
    torch_threads: int = 1

    @property
    def n_workers(self) -> int:
        return max(1, len(self.client.scheduler_info(n_workers=-1).get("workers", {})))


def processes(eng: Engine) -> bool:
    """True when the workers are processes of their own (not threads of this one)."""
    return any(not str(addr).startswith("inproc") for addr in eng.client.scheduler_info(n_workers=-1)["workers"])


@contextlib.contextmanager
def engine(choice: ClusterChoice | None = None, token: CancelToken | None = None) -> Iterator[Engine]:
    """Open the cluster ``choice`` names; a LocalCluster started here is closed on the way out.

    With a ``token``, starting the workers (seconds: each is a new Python
    process that imports torch) or connecting to a scheduler ends at a cancel
    within 50 ms: the start goes on in the background and what it opened is
    closed there.
    """
    choice = choice or ClusterChoice()
    if choice.scheduler:
        try:
            client = _opened(lambda: Client(choice.scheduler, timeout=CONNECT_TIMEOUT_S, set_as_default=False),
                             lambda c: c.close(), token)
        except (OSError, TimeoutError, ValueError) as exc:
            raise UserError(f"no dask scheduler answers at {choice.scheduler} ({type(exc).__name__})",
                            "check the address (tcp://HOST:8786), that `dask scheduler` runs there and that "
                            "its port is reachable") from None
        try:
            yield Engine(client, client.dashboard_link, False)
        finally:
            client.close()
        return
    workers, torch_threads = local_layout()
    if choice.workers:
        workers = choice.workers
        torch_threads = max(1, (os.cpu_count() or 1) // workers)
    where = {"host": "127.0.0.1", "memory_limit": "auto"} if choice.processes else {"memory_limit": 0}

    def start() -> tuple[LocalCluster, Client]:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=choice.threads or 1,
                               processes=choice.processes, dashboard_address="127.0.0.1:0", silence_logs=40, **where)
        try:
            return cluster, Client(cluster, set_as_default=False)
        except BaseException:
            cluster.close()
            raise

    try:
        cluster, client = _opened(start, lambda opened: _close(opened[1], opened[0]), token)
    except (RuntimeError, OSError, TimeoutError) as exc:
        raise UserError(f"the {workers} local dask worker(s) could not start ({_why(exc)})",
                        "in a Python script, run the job under `if __name__ == \"__main__\":` (workers are new "
                        "processes that import the script); or check the free memory, or give --workers 1") from None
    try:
        yield Engine(client, client.dashboard_link, True, torch_threads)
    except Cancelled:
        # closing the workers takes seconds; a cancelled job ends now and they close in the background
        threading.Thread(target=_close, args=(client, cluster), daemon=True, name="dlmicro-cluster-close").start()
        raise
    except BaseException:
        _close(client, cluster)
        raise
    _close(client, cluster)


def _close(client: Client, cluster: LocalCluster) -> None:
    client.close()
    cluster.close()


def _opened(open_: Callable[[], Any], close: Callable[[Any], None], token: CancelToken | None) -> Any:
    """``open_()``, in a helper thread the caller stops waiting for at a cancel.

    What the helper opens after the caller has gone is closed by the helper.
    """
    if token is None or token is NEVER:
        return open_()
    outcome: dict[str, Any] = {}
    lock = threading.Lock()
    finished = threading.Event()

    def target() -> None:
        try:
            value = open_()
        except BaseException as exc:  # re-raised in the caller's thread below
            outcome["error"] = exc
            finished.set()
            return
        with lock:
            abandoned = outcome.get("abandoned", False)
            outcome["value"] = value
        finished.set()
        if abandoned:
            close(value)

    threading.Thread(target=target, name="dlmicro-cluster-open", daemon=True).start()
    while not finished.wait(0.05):
        if token.cancelled:
            with lock:
                if "value" not in outcome:
                    outcome["abandoned"] = True
                    raise Cancelled()
            break
    if "error" in outcome:
        raise outcome["error"]
    if token.cancelled:
        threading.Thread(target=close, args=(outcome["value"],), daemon=True, name="dlmicro-cluster-close").start()
        raise Cancelled()
    return outcome["value"]


def scatter(eng: Engine, value: Any, token: CancelToken) -> Future:
    """``value`` sent once to every worker; a cancel ends the wait within 50 ms."""
    return call_abandoning(lambda: eng.client.scatter(value, broadcast=True, hash=False), token=token)


@dataclass
class Finished:
    """One task's outcome: its item, and its result or the error it failed with (after retries)."""

    item: Any
    result: Any = None
    error: BaseException | None = None


def run_tasks(client: Client, fn: Callable[..., Any], items: Sequence[Any], *args: Any, token: CancelToken,
              on_cancel: Callable[[], None] | None = None, key: str = "task", **kwargs: Any) -> Iterator[Finished]:
    """Submit ``fn(item, *args, **kwargs)`` for every item; yield each :class:`Finished` as it ends.

    Yields ``None`` at least every 50 ms while nothing finishes, so a caller
    can report progress and so a cancel is seen quickly: then every future is
    cancelled, ``on_cancel`` is called (to tell running tasks) and
    :class:`Cancelled` is raised.
    """
    futures: dict[Future, Any] = {}
    for i, item in enumerate(items):
        futures[client.submit(fn, item, *args, key=f"{key}-{i}-{id(items)}", retries=RETRIES, pure=False,
                              **kwargs)] = item
    pending = as_completed(list(futures), loop=client.loop)
    try:
        while not pending.is_empty():
            if token.cancelled:
                raise Cancelled("cancelled by the user")
            batch = pending.next_batch(block=False) if pending.has_ready() else []
            for future in batch:
                item = futures[future]
                if future.status == "finished":
                    yield Finished(item, future.result())
                else:
                    yield Finished(item, error=_error_of(future))
                future.release()
            if not batch:
                token.wait(0.05)
                yield None
    except BaseException:
        if on_cancel is not None:
            on_cancel()
        client.cancel(list(futures), force=True)
        raise


def _why(exc: BaseException) -> str:
    """The innermost cause's message (a worker that failed to start is wrapped several times over)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _error_of(future: Future) -> BaseException:
    try:
        exc = future.exception(timeout=5)
    except Exception as err:  # the scheduler lost the task (e.g. cancelled): report that instead
        return err
    return exc if isinstance(exc, BaseException) else RuntimeError(str(exc))


_MODELS: dict[Any, tuple[Any, threading.Lock]] = {}
_MODELS_LOCK = threading.Lock()


def worker_model(key: Any, load: Callable[[], Any]) -> tuple[Any, threading.Lock]:
    """The model ``key`` names in this worker process, loaded by ``load`` on first use; and its lock.

    A worker's threads share one model and take its lock around each use,
    since a model (and its caches) is not safe to run twice at once.
    """
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS.clear()  # one model per worker: a new job's model replaces the last one
            _MODELS[key] = (load(), threading.Lock())
        return _MODELS[key]
