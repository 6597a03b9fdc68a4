"""What the flows share: where a stage's tasks run, the one way to reach Dask, and summing
shard results with progress.

Every stage flow runs through :func:`run_stage`: inside :func:`dfpipe.flows.server.prefect_api`
(one Prefect API for the flow and its workers) and on a :class:`StageTaskRunner`, which chooses
where the tasks run when the flow first submits them, from how many there are:

- at most ``DaskConfig.in_process_shards`` (default 1: a small corpus, a training run, an
  archive of a few files): Prefect's ``ThreadPoolTaskRunner``, in this process. No cluster
  starts and no worker process imports torch, so a small command costs seconds, not a minute;
- more, or ``DaskConfig.in_process_shards=0``: a LocalCluster (:func:`local_cluster_kwargs`);
- a scheduler ``address`` (``--dask-address``): always that cluster, whatever the count.

Dask is reached two ways, both built from a :class:`~dfpipe.config.DaskConfig` by
:func:`local_cluster_kwargs` (the one place the LocalCluster settings are written):

- :func:`dask_task_runner`: the Prefect ``DaskTaskRunner`` a stage flow runs its tasks on;
- :func:`dask_client`: a plain ``distributed.Client`` (the study flow's shared cluster,
  the demo-corpus build, the benchmarks), usable as the ``executor`` of a stage function.

Inside a task that itself fans out, :func:`task_executor` gives the cluster running it (or
``None`` in this process). GPU work (training, scoring) goes through :func:`run_on_gpu_if_any`:
Dask workers that own a GPU are started with ``dask worker ... --resources GPU=1``; when
any worker advertises one, the task asks for it, otherwise the same code runs on the CPU
of whichever worker takes it. ``prefect_dask`` and ``distributed`` are imported only when a
stage uses Dask (about a second of a command's start-up).

Expected errors (:class:`~dfpipe.errors.DfpipeError`) raised inside a flow reach the caller as
they are; Prefect's console log of them (a traceback of 20+ lines) is dropped, so the command
line prints one line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sized
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.futures import PrefectFuture, as_completed
from prefect.logging.handlers import PrefectConsoleHandler
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from prefect.utilities.annotations import BaseAnnotation

from dfpipe.config import DASK_ADDRESS_ENV, DaskConfig
from dfpipe.errors import DfpipeError
from dfpipe.flows.server import prefect_api
from dfpipe.progress import Progress
from dfpipe.stage_kit import StageSummary

if TYPE_CHECKING:
    from prefect import Flow
    from prefect_dask import DaskTaskRunner

R = TypeVar("R")


def local_cluster_kwargs(config: DaskConfig) -> dict[str, Any]:
    """The ``distributed.LocalCluster`` arguments of ``config``: worker processes, no dashboard.

    The workers get this process's ``PREFECT_API_URL`` in their environment: anything Prefect
    does on a worker outside a task's own settings (which carry the URL too) then reports to
    the flow's server, instead of starting a temporary server in each worker."""
    from prefect.settings import get_current_settings

    api_url = get_current_settings().api.url
    return {
        "n_workers": config.n_workers,
        "threads_per_worker": config.threads_per_worker,
        "processes": True,
        "dashboard_address": None,
        "env": {"PREFECT_API_URL": api_url} if api_url else {},
    }


def dask_config_from_env(address: str | None = None) -> DaskConfig:
    """``address``, else ``$DFPIPE_DASK_ADDRESS``, else a LocalCluster (``DaskConfig()``)."""
    return DaskConfig(address=address or os.environ.get(DASK_ADDRESS_ENV) or None)


def dask_task_runner(config: DaskConfig) -> DaskTaskRunner:
    """A ``DaskTaskRunner`` joining ``config.address``, or starting a LocalCluster."""
    from prefect_dask import DaskTaskRunner

    if config.address:
        return DaskTaskRunner(address=config.address)
    return DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs=local_cluster_kwargs(config))


@contextmanager
def dask_client(config: DaskConfig) -> Iterator[Any]:
    """A ``distributed.Client``: joined to ``config.address`` or on a new LocalCluster."""
    from distributed import Client, LocalCluster

    if config.address:
        with Client(config.address) as client:
            yield client
        return
    with LocalCluster(**local_cluster_kwargs(config)) as cluster, Client(cluster) as client:
        yield client


class StageTaskRunner(TaskRunner[PrefectFuture[Any]]):
    """A stage's task runner: this process's threads for a small stage, Dask otherwise.

    The choice is made once, when the flow first submits work (after it planned its shards):
    from the number of tasks of that ``map`` (one per shard) or ``submit`` (one), or from
    ``shards`` when the caller counted them before the flow (score-archive's decode tasks).
    See the module docstring for the rule.
    """

    def __init__(self, config: DaskConfig, shards: int | None = None) -> None:
        super().__init__()
        self.config = config
        self.shards = shards
        self._runner: TaskRunner[Any] | None = None

    def duplicate(self) -> StageTaskRunner:
        return type(self)(self.config, self.shards)

    def on_dask(self, tasks: int) -> bool:
        """Start the runner for a stage of ``tasks`` tasks (unless started); whether it is Dask's."""
        if self._runner is None:
            planned = tasks if self.shards is None else self.shards
            if not self.config.address and planned <= self.config.in_process_shards:
                self._runner = ThreadPoolTaskRunner(max_workers=self.config.n_workers or os.cpu_count() or 1)
            else:
                self._runner = dask_task_runner(self.config)
            self._runner.__enter__()
        return not isinstance(self._runner, ThreadPoolTaskRunner)

    def submit(self, task: Task[..., Any], parameters: dict[str, Any], wait_for: Any = None,
               dependencies: Any = None) -> PrefectFuture[Any]:
        self.on_dask(1)
        assert self._runner is not None
        return self._runner.submit(task, parameters, wait_for, dependencies)

    def map(self, task: Task[..., Any], parameters: dict[str, Any], wait_for: Any = None) -> Any:
        self.on_dask(max((len(value) for value in parameters.values()  # the mapped (iterable) parameters
                          if isinstance(value, Sized) and not isinstance(value, (str, bytes, BaseAnnotation))),
                         default=1))
        assert self._runner is not None
        return self._runner.map(task, parameters, wait_for)

    def __exit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            self._runner.__exit__(*exc_info)
            self._runner = None
        super().__exit__(*exc_info)


def run_stage(stage_flow: Flow[..., R], config: DaskConfig, *args: Any, shards: int | None = None) -> R:
    """Run ``stage_flow(*args)`` on a :class:`StageTaskRunner` of ``config``, against the
    Prefect API of :func:`~dfpipe.flows.server.prefect_api`."""
    with prefect_api():
        try:
            return stage_flow.with_options(task_runner=StageTaskRunner(config, shards))(*args)
        except Exception as exc:
            if not _scheduler_lost(exc):
                raise
            raise DfpipeError(f"lost the Dask scheduler {config.address or ''} mid-stage: its tasks were "
                              "cancelled; the shards already committed are kept, re-run the command once a "
                              "scheduler is up") from exc


def _scheduler_lost(exc: BaseException | None) -> bool:
    """True for Dask's answers to a scheduler that went away mid-stage: every future cancelled,
    or the request in flight cut (``CommClosedError``)."""
    if getattr(exc, "reason", None) == "scheduler-connection-lost":
        return True
    comm = sys.modules.get("distributed.comm.core")  # not imported: no Dask, no lost scheduler
    return comm is not None and isinstance(exc, comm.CommClosedError)


@contextmanager
def task_executor() -> Iterator[Any]:
    """Inside a task: a client of the Dask cluster running it, or ``None`` when the task runs
    in this process (a stage function then does its work here)."""
    if not _on_dask_worker():
        yield None
        return
    from prefect_dask import get_dask_client

    with get_dask_client() as client:
        yield client


def _on_dask_worker() -> bool:
    if "distributed" not in sys.modules:  # every Dask worker has imported it
        return False
    from distributed import get_worker

    try:
        get_worker()
    except ValueError:
        return False
    return True


def completed(futures: list[PrefectFuture[R]], description: str, show_progress: bool) -> Iterator[R]:
    """The futures' results as they complete, with progress (one step per shard): a bar on a
    terminal, a line per tenth of the shards otherwise (:class:`dfpipe.progress.Progress`)."""
    with Progress(show_progress, unit="shards") as progress:
        progress.update(description, 0, len(futures))
        for future in as_completed(futures):
            yield future.result()
            progress.advance(description)


def collect(futures: list[PrefectFuture[StageSummary]], description: str, show_progress: bool) -> StageSummary:
    """Sum shard summaries as they complete, with a progress bar (conditions and features flows)."""
    return StageSummary.total(completed(futures, description, show_progress))


@task(cache_policy=NO_CACHE)
def cluster_gpus() -> int:
    """GPUs advertised by the cluster's workers (``resources={"GPU": n}``)."""
    from prefect_dask import get_dask_client

    with get_dask_client() as client:
        workers = client.scheduler_info(n_workers=-1)["workers"].values()
        return int(sum(w.get("resources", {}).get("GPU", 0) for w in workers))


def gpu_annotation(gpus: int) -> contextlib.AbstractContextManager[object]:
    """Ask Dask for one GPU when the cluster has any; no constraint otherwise."""
    import dask

    return dask.annotate(resources={"GPU": 1}) if gpus else contextlib.nullcontext()


def run_on_gpu_if_any(gpu_task: Task[..., R], *args: Any) -> R:
    """Submit ``gpu_task(*args)`` asking for a GPU when the cluster has one; wait for its result.
    In this process (no cluster) the task runs as it is and picks its device itself."""
    if not _flow_on_dask():
        return gpu_task.submit(*args).result()
    with gpu_annotation(cluster_gpus.submit().result()):
        future = gpu_task.submit(*args)
    return future.result()


def _flow_on_dask() -> bool:
    """Whether the running flow's tasks go to Dask (a one-task stage: see :class:`StageTaskRunner`)."""
    context = FlowRunContext.get()
    runner = context.task_runner if context else None
    if isinstance(runner, StageTaskRunner):
        return runner.on_dask(1)
    prefect_dask = sys.modules.get("prefect_dask")  # not imported: no DaskTaskRunner exists
    return prefect_dask is not None and isinstance(runner, prefect_dask.DaskTaskRunner)


class _QuietConsole(logging.Filter):
    """Drops two kinds of record from Prefect's console: the log of a :class:`DfpipeError` raised
    in a flow or task (Prefect adds its traceback; the caller gets the exception and the command
    line prints one line), and the "Still processing items" notes of Prefect's event and log
    queues draining at exit (the process waits for them either way)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and (isinstance(record.exc_info[1], DfpipeError) or _scheduler_lost(record.exc_info[1])
                                or record.name == "distributed.client"):
            return False  # (the Dask client's own traceback of its reconnect attempts to a lost scheduler)
        return not str(record.msg).startswith("Still processing items")


def _quiet_console() -> None:
    """Put :class:`_QuietConsole` on Prefect's console handler (made when prefect is imported)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler) and not any(
                isinstance(f, _QuietConsole) for f in handler.filters):
            handler.addFilter(_QuietConsole())


_quiet_console()
