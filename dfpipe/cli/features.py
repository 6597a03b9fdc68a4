"""``dfpipe features``: log-mel + delta and LFCC of a (corpus, condition) into ``features``."""

from __future__ import annotations

import time

import click

from dfpipe.cli._common import dask_options, friendly_errors, lake_option, split_option, splits_text
from dfpipe.config import RAW_CONDITION, DaskConfig, FeaturesConfig


@click.command()
@lake_option
@click.option("--corpus", required=True, help="Corpus in the lake.")
@click.option("--condition", required=True,
              help=f"A condition made by `dfpipe condition` (flac, mp3_128k, ...) or {RAW_CONDITION!r} "
                   "(original files).")
@click.option("--clips-per-shard", type=int, default=FeaturesConfig.clips_per_shard, show_default=True,
              help="Clips per unit of parallel work and of commit.")
@click.option("--batch-size", type=int, default=FeaturesConfig.batch_size, show_default=True,
              help="Clips per front-end forward pass.")
@split_option
@dask_options
@friendly_errors
def features(lake: str, corpus: str, condition: str, clips_per_shard: int, batch_size: int,
             splits: tuple[str, ...], dask_config: DaskConfig) -> None:
    """Compute the front end's features for every clip of CORPUS under CONDITION (or of
    the splits given).

    Rows are keyed by the front-end version (a hash of its parameters): re-running skips
    what is done; a changed front end recomputes.

    \b
    Examples:
      dfpipe features --lake lake --corpus demo --condition flac
      dfpipe features --lake lake --corpus asv5 --condition corrupt+mp3_128k --split train
      dfpipe query --lake lake "select condition, frontend_version, count(*) from features group by all"
    """
    from dfpipe.conditions.grammar import parse_condition
    from dfpipe.flows.features import run_features_flow
    from dfpipe.lake import Lake

    config = FeaturesConfig(clips_per_shard=clips_per_shard, batch_size=batch_size)
    parse_condition(condition, config.frontend.audio.sample_rate)  # fail before the cluster starts
    started = time.perf_counter()
    summary = run_features_flow(Lake(lake).uri, corpus, condition, config=config, dask_config=dask_config,
                                splits=splits or None)
    where = Lake(lake)
    click.echo(
        f"{corpus}:{condition}{splits_text(splits)}: {summary.rows} features rows (front end {config.frontend.version}) and "
        f"{summary.rejects} rejects written in {summary.shards} shards; {time.perf_counter() - started:.1f} s\n"
        f"wrote {where.table_path('features', {'corpus': corpus})}"
    )
