"""Deployable entry points (``prefect.yaml``): plain JSON parameters in, stage flows out.

A deployment run gets its parameters from the Prefect API as JSON and runs its entrypoint
with that flow's own task runner. The stage flows take config dataclasses and get their
``DaskTaskRunner`` from the ``*_flow`` / ``run_*_flow`` helpers, so they cannot be
entrypoints themselves; the flows here take plain values, build the config and the Dask
cluster choice, and call those helpers (the stage flow then runs as a subflow).

Dask cluster of a deployment run: the ``dask_address`` parameter when given, else the
worker's ``DFPIPE_DASK_ADDRESS`` (``infra/compose.yaml`` sets it), else a LocalCluster on
the Prefect worker itself.
"""

from __future__ import annotations

from prefect import flow

from dfpipe.archive_scoring import ArchiveSummary
from dfpipe.config import ScoreConfig
from dfpipe.flows._common import dask_config_from_env
from dfpipe.flows.score import score_archive_flow


@flow(name="score-archive-deployment")
def score_archive_deployment(
    archive: list[str],
    checkpoint: str,
    out: str,
    hop_s: float = ScoreConfig.hop_s,
    batch_size: int = ScoreConfig.batch_size,
    device: str = ScoreConfig.device,
    dask_address: str | None = None,
) -> ArchiveSummary:
    """Score every audio file of ``archive`` that ``out`` does not hold yet (``dfpipe score-archive``).

    Scheduled nightly by ``prefect.yaml``: files already scored (or rejected) are skipped,
    so each run scores what arrived since the last one.

    Args:
        archive: folders (searched recursively), files or glob patterns, as every worker sees them.
        checkpoint: an ``epoch-NNN.pt`` (path or fsspec URL).
        out: output folder (``out/scores``, ``out/rejects``).
        hop_s: seconds between 3 s windows over whole files.
        batch_size: windows per forward pass.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        dask_address: the scheduler to use (see the module docstring for the fallbacks).
    """
    config = ScoreConfig(hop_s=hop_s, batch_size=batch_size, device=device)
    return score_archive_flow(paths=list(archive), checkpoint=checkpoint, out=out, config=config,
                              dask_config=dask_config_from_env(dask_address))
