"""Pluggable executors for shard-sized work (lhotse style).

Every CPU stage splits its input into shards and hands each shard to ``fn``; the shard
function does real work (seconds, not milliseconds: Dask costs ~1 ms per task) and writes
its own output. ``executor`` is ``None`` (run here, in order) or anything with
``submit(fn, *args)`` returning a future: a ``distributed.Client``, a
``concurrent.futures`` pool.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from dfpipe.config import DaskConfig

S = TypeVar("S")
R = TypeVar("R")


class Executor(Protocol):
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any: ...


def map_shards(fn: Callable[[S], R], shards: Iterable[S], executor: Executor | None = None) -> Iterator[R]:
    """Run ``fn`` on every shard, yielding results as they complete (in order when local).

    Exceptions raised by ``fn`` propagate: shard functions turn bad *inputs* into rejects
    rows themselves, so an exception here is a bug or an infrastructure failure.
    """
    if executor is None:
        for shard in shards:
            yield fn(shard)
        return
    futures = [executor.submit(fn, shard) for shard in shards]
    if hasattr(executor, "gather"):  # a distributed.Client
        from distributed import as_completed

        for future in as_completed(futures):
            yield future.result()
    else:
        for future in concurrent.futures.as_completed(futures):
            yield future.result()


@contextmanager
def dask_client(config: DaskConfig) -> Iterator[Any]:
    """A ``distributed.Client``: joined to ``config.address`` or on a new LocalCluster."""
    from distributed import Client, LocalCluster

    if config.address:
        with Client(config.address) as client:
            yield client
        return
    with LocalCluster(
        n_workers=config.n_workers,
        threads_per_worker=config.threads_per_worker,
        processes=True,
        dashboard_address=None,
    ) as cluster, Client(cluster) as client:
        yield client
