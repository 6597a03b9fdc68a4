"""``dfpipe metrics``: run the metric SQL over the lake and materialise every table."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import fields
from typing import Any

import click

from dfpipe.cli._common import friendly_errors, lake_option
from dfpipe.config import MetricsConfig
from dfpipe.errors import ConfigError


def metrics_config_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Options for every :class:`MetricsConfig` field, turned into a ``config`` argument."""
    defaults = MetricsConfig()
    help_texts = {
        "threshold": "P(spoof) threshold of the threshold metrics (spoof when >=).",
        "p_spoof": "DCF prior of spoof (ASVspoof 5: 0.05).",
        "c_miss": "DCF cost of rejecting bona fide.",
        "c_fa": "DCF cost of accepting spoof.",
        "bootstrap_samples": "Bootstrap replicates per dataset (cost ~ replicates x rows).",
        "bootstrap_seed": "Seed of the hash-based bootstrap draws.",
        "memory_limit": "DuckDB memory limit (e.g. 6GB); past it DuckDB spills to --temp-directory. "
                        "Default: half the physical memory.",
        "temp_directory": "Folder DuckDB spills to. Default: a fresh folder in a local lake's root "
                          "(the system temporary folder for a remote lake), removed afterwards.",
        "threads": "DuckDB threads (0: one per core); fewer threads leave more memory to the data.",
    }
    names = [f.name for f in fields(MetricsConfig)]

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            kwargs["config"] = MetricsConfig(**{name: kwargs.pop(name) for name in names})
        except ConfigError as exc:
            raise click.UsageError(str(exc)) from exc
        return func(*args, **kwargs)

    for name in reversed(names):
        value = getattr(defaults, name)
        wrapper = click.option(
            f"--{name.replace('_', '-')}", type=type(value), default=value, show_default=value != "",
            help=help_texts.get(name),
        )(wrapper)
    return wrapper


@click.command()
@lake_option
@metrics_config_options
@friendly_errors
def metrics(lake: str, config: MetricsConfig) -> None:
    """Compute every metric table (sql/*.sql) over the lake's predictions.

    Writes LAKE/metrics/<table>.parquet and LAKE/metrics.duckdb (open it with the duckdb
    CLI, or use `dfpipe query`). See docs/metrics.md for the tables and conventions, and
    for --memory-limit / --temp-directory on large lakes.

    \b
    Example:
      dfpipe metrics --lake lake
      dfpipe metrics --lake lake --memory-limit 6GB --temp-directory /scratch/spill
      dfpipe query --lake lake "select * from leaderboard"
    """
    from dfpipe.metrics import compute_metrics

    summary = compute_metrics(lake, config)
    width = max(len(name) for name in summary.rows)
    for name, rows in summary.rows.items():
        click.echo(f"  {name:<{width}}  {rows:>9,} rows")
    click.echo(f"wrote {len(summary.rows)} tables to {summary.parquet_dir}/ and {summary.database}")
    if summary.spilled_bytes:
        click.echo(f"DuckDB spilled up to {summary.spilled_bytes / 2**20:,.0f} MiB past --memory-limit "
                   f"{config.memory_limit} to its temp directory")
