"""``dfpipe score`` (clips of the lake) and ``dfpipe score-archive`` (files on disk), both run
in their Prefect flows (:mod:`dfpipe.flows.score`); ``score-archive --no-flow`` runs in-process."""

from __future__ import annotations

import click

from dfpipe.cli._common import dask_options, friendly_errors, lake_option
from dfpipe.config import DaskConfig, ScoreConfig


@click.command()
@lake_option
@click.option("--run", "run_id", required=True, help="A run id (see the runs table).")
@click.option("--epoch", type=int, default=None, help="Default: the run's last committed epoch.")
@click.option("--corpus", required=True, help="Corpus to score (all its clips unless --split).")
@click.option("--condition", default=None, help="Default: the run's training condition.")
@click.option("--split", default=None, help="Only this split.")
@click.option("--dataset", default=None, help="predictions.dataset name (default: the corpus name).")
@click.option("--device", default=ScoreConfig.device, show_default=True)
@dask_options
@friendly_errors
def score(lake: str, run_id: str, epoch: int | None, corpus: str, condition: str | None, split: str | None,
          dataset: str | None, device: str, dask_config: DaskConfig) -> None:
    """Score a corpus of the lake with a run's checkpoint into the predictions table.

    \b
    Example:
      dfpipe score --lake lake --run 3f2a... --corpus itw --dataset itw
    """
    from dfpipe.flows.score import score_flow
    from dfpipe.score import run_data_spec

    text = corpus + (f":{condition}" if condition else "") + (f"@{split}" if split else "")
    summary = score_flow(lake_uri=lake, run_id=run_id, data=run_data_spec(lake, run_id, text), dataset=dataset,
                         epoch=epoch, config=ScoreConfig(device=device), dask_config=dask_config)
    click.echo(f"wrote {summary.rows} predictions ({summary.data}) as dataset {summary.dataset!r}, "
               f"run {summary.run_id} epoch {summary.epoch}, in {lake}")


@click.command("score-archive")
@click.argument("paths", nargs=-1, required=True)
@click.option("--checkpoint", default=None,
              help="An epoch-NNN.pt (path or fsspec URL). Default: the detector shipped with dfpipe.")
@click.option("--out", required=True, help="Output folder: OUT/scores/*.parquet, OUT/rejects/*.parquet.")
@click.option("--hop", "hop_s", type=float, default=ScoreConfig.hop_s, show_default=True,
              help="Seconds between windows over whole files.")
@click.option("--batch-size", type=int, default=ScoreConfig.batch_size, show_default=True)
@click.option("--device", default=ScoreConfig.device, show_default=True)
@click.option("--no-flow", is_flag=True, help="Decode in this process, without Prefect and Dask.")
@dask_options
@friendly_errors
def score_archive(paths: tuple[str, ...], checkpoint: str | None, out: str, hop_s: float, batch_size: int, device: str,
                  no_flow: bool, dask_config: DaskConfig) -> None:
    """Score audio files (PATHS: files, folders, globs) with a checkpoint.

    Per file: the centre-crop logit (the study's convention) and the mean and max over
    3 s windows every --hop seconds. Re-running skips files already in OUT; files that
    cannot be decoded are listed in OUT/rejects and printed.

    \b
    Example:
      dfpipe score-archive 'calls/**/*.mp3' --checkpoint lake/checkpoints/RUN/epoch-050.pt --out scores
    """
    from dfpipe.shipped_model import default_checkpoint

    checkpoint = checkpoint or default_checkpoint()
    config = ScoreConfig(hop_s=hop_s, batch_size=batch_size, device=device)
    if no_flow:
        from dfpipe.archive_scoring import score_archive as run

        summary = run(list(paths), checkpoint, out, config=config)
    else:
        from dfpipe.flows.score import score_archive_flow

        summary = score_archive_flow(paths=list(paths), checkpoint=checkpoint, out=out, config=config,
                                     dask_config=dask_config)
    click.echo(f"{summary.scored} file(s) scored, {summary.rejected} rejected, {summary.skipped} already done, "
               f"{summary.audio_s / 3600:.2f} h of audio in {summary.wall_s:.1f} s; wrote {out}/scores "
               f"and {out}/rejects")
