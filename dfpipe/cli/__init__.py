"""The ``dfpipe`` command line.

Commands are imported only when used (``COMMANDS`` maps each name to ``module:attribute``),
so ``dfpipe --help`` answers at once instead of importing torch, Prefect and Dask.
"""

from __future__ import annotations

import importlib
import os

import click

from dfpipe.config import PREFECT_SERVER_ENV

# Prefect reads its settings at import: set ours before any command imports it.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")  # nor the client's (no background sender at each command)
# The commands print their own progress and summary: Prefect's console shows warnings and
# errors only (its INFO lines still reach the server; PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL=INFO
# shows them).
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
# No PREFECT_API_URL: the first flow starts a local server in the background, later commands
# reuse it (dfpipe/flows/server.py; `dfpipe server stop`).
os.environ.setdefault(PREFECT_SERVER_ENV, "background")
# The ephemeral server needs ~10 s on an idle 2-core machine; Prefect's 20 s default fails
# when the machine is busy (e.g. Dask workers starting at the same time).
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

COMMANDS: dict[str, str] = {
    "query": "dfpipe.cli.query:query",
    "study": "dfpipe.cli.study:study",
    "demo": "dfpipe.cli.study:demo",
    "report": "dfpipe.cli.study:report",
    "models": "dfpipe.cli.models:models",
    "train": "dfpipe.cli.train:train",
    "score": "dfpipe.cli.score:score",
    "score-archive": "dfpipe.cli.score:score_archive",
    "metrics": "dfpipe.cli.metrics:metrics",
    "eval": "dfpipe.cli.eval:eval_command",
    "export-scores": "dfpipe.cli.eval:export_scores_command",
    "export": "dfpipe.cli.export:export",
    "ingest": "dfpipe.cli.ingest:ingest",
    "condition": "dfpipe.cli.condition:condition",
    "features": "dfpipe.cli.features:features",
    "diagnose": "dfpipe.cli.diagnose:diagnose",
    "corpus": "dfpipe.cli.corpus:corpus",
    "server": "dfpipe.cli.server:server",
    "calibrate": "dfpipe.cli.calibrate:calibrate",
    "fuse": "dfpipe.cli.fuse:fuse",
    "detect": "dfpipe.cli.detect:detect",
    "train-default": "dfpipe.cli.detect:train_default",
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
