"""The ``dfpipe`` command line.

Commands are imported only when used (``COMMANDS`` maps each name to ``module:attribute``),
so ``dfpipe --help`` answers at once instead of importing torch, Prefect and Dask.
"""

from __future__ import annotations

import importlib
import os

import click

# Prefect reads its settings at import: set ours before any command imports it.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

COMMANDS: dict[str, str] = {
    "query": "dfpipe.cli.query:query",
}


class LazyGroup(click.Group):
    """A click group whose sub-commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        return getattr(importlib.import_module(module_name), attribute)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dfpipe")
def main() -> None:
    """dfpipe: audio deepfake detection at scale.

    Corpora become Parquet tables (ingest), ffmpeg makes audio conditions on Dask workers,
    detectors train and score on GPU or CPU, and DuckDB SQL computes every metric.
    """
