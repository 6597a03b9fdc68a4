"""Options and helpers shared by the ``dfpipe`` commands."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from dfpipe.config import DASK_ADDRESS_ENV, DEFAULT_LAKE, LAKE_ENV, DaskConfig
from dfpipe.errors import DfpipeError


def lake_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--lake``: the lake root (env ``DFPIPE_LAKE``; default ``./lake``)."""
    return click.option(
        "--lake",
        envvar=LAKE_ENV,
        default=DEFAULT_LAKE,
        show_default=True,
        help="Lake root: a folder or an fsspec URL (s3://bucket/lake).",
    )(func)


def dask_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--dask-address`` / ``--workers``, turned into a ``dask_config`` argument."""

    @click.option(
        "--dask-address",
        envvar=DASK_ADDRESS_ENV,
        default=None,
        help="Join this Dask scheduler (tcp://host:8786) instead of starting a LocalCluster.",
    )
    @click.option("--workers", type=int, default=None, help="LocalCluster workers (default: one per core).")
    @functools.wraps(func)
    def wrapper(*args: Any, dask_address: str | None, workers: int | None, **kwargs: Any) -> Any:
        kwargs["dask_config"] = DaskConfig(address=dask_address, n_workers=workers)
        return func(*args, **kwargs)

    return wrapper


def friendly_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Print a :class:`DfpipeError` as one clear line and exit 2, not a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DfpipeError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper
