"""``dfpipe detect`` (a few files, in seconds, no cluster and no Prefect) and ``dfpipe
train-default`` (the recipe of the shipped detector).

``detect`` is archive scoring in this process (:func:`dfpipe.archive_scoring.score_archive`
with no executor, into a temporary folder: the same decoding, centre crop and windows as
``score-archive``), plus the checkpoint's calibration (:func:`dfpipe.llr.read_calibration`)
and one decision per file. It imports neither Prefect nor Dask: ``tests/test_detect.py``
checks it.
"""

from __future__ import annotations

import click

from dfpipe.cli._common import TableData, format_option, friendly_errors, note, print_tables
from dfpipe.config import CalibrationConfig, DefaultDetectorConfig, MetricsConfig, ScoreConfig

COLUMNS = ["path", "duration_s", "n_windows", "p_spoof", "llr", "p_spoof_window_max", "llr_window_max",
           "verdict", "reason"]
"""Per file: P(spoof) = sigmoid(logit) of the centre crop (the model's own output), the
calibrated spoof LLR of the centre crop (null without a calibration), the same two for the
window of highest score over the whole file, the verdict (spoof / bonafide / unreadable) and
why a file could not be read."""


@click.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--checkpoint", default=None,
              help="An epoch-NNN.pt (its epoch-NNN.calibration.json beside it is applied when present). "
                   "Default: the detector shipped with dfpipe.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of objects (same as --format json).")
@format_option()
@click.option("--hop", "hop_s", type=float, default=ScoreConfig.hop_s, show_default=True,
              help="Seconds between the 3 s windows over long files.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto.")
@friendly_errors
def detect(paths: tuple[str, ...], checkpoint: str | None, as_json: bool, output_format: str, hop_s: float,
           device: str) -> None:
    """Say whether audio files (PATHS: files, folders, globs) are spoofed, one row per file.

    The verdict is taken on the centre 3 s crop, the clip length the model was trained and
    calibrated on: with a calibration, spoof when the calibrated LLR exceeds the Bayes
    threshold of the ASVspoof 5 costs (ln 1.9); without one, spoof when P(spoof) >= 0.5.
    The window max shows the most spoof-like 3 s of a long file.

    \b
    Examples:
      dfpipe detect call.mp3 voicemails/
      dfpipe detect --json --checkpoint lake/checkpoints/RUN/epoch-050.pt '*.wav'
    """
    import glob
    import math
    import os
    import tempfile

    import pyarrow.parquet as pq

    from dfpipe.archive_scoring import score_archive
    from dfpipe.llr import read_calibration
    from dfpipe.shipped_model import default_checkpoint

    checkpoint = checkpoint or default_checkpoint()
    calibration = read_calibration(checkpoint)
    bayes = CalibrationConfig().bayes_threshold
    with tempfile.TemporaryDirectory(prefix="dfpipe-detect-") as out:
        summary = score_archive(list(paths), checkpoint, out, config=ScoreConfig(hop_s=hop_s, device=device),
                                progress=False, log=lambda line: None)
        parts = sorted(glob.glob(os.path.join(out, "scores", "*.parquet")))
        scored = [row for part in parts for row in pq.read_table(part).to_pylist()]

    def p_spoof(logit: float) -> float:
        return 1.0 / (1.0 + math.exp(-logit)) if logit >= 0 else math.exp(logit) / (1.0 + math.exp(logit))

    def llr(logit: float) -> float | None:
        return None if calibration is None else float(calibration.llr([logit])[0])

    rows = []
    for item in scored:
        centre, top = item["spoof_logit_center"], item["spoof_logit_window_max"]
        is_spoof = llr(centre) > bayes if calibration is not None else p_spoof(centre) >= MetricsConfig.threshold
        rows.append([item["path"], item["duration_s"], item["n_windows"], p_spoof(centre), llr(centre),
                     p_spoof(top), llr(top), "spoof" if is_spoof else "bonafide", None])
    rows += [[path, None, None, None, None, None, None, "unreadable", why] for path, why in summary.rejects]
    rows.sort(key=lambda row: row[0])
    output_format = "json" if as_json else output_format
    print_tables([TableData(COLUMNS, rows, display={"duration_s": "{:.1f}".format, "p_spoof": "{:.3f}".format,
                                                     "p_spoof_window_max": "{:.3f}".format,
                                                     "llr": "{:+.2f}".format, "llr_window_max": "{:+.2f}".format},
                            null="")], output_format)
    rule = (f"calibrated LLR > {bayes:.3f} (Bayes decision at the ASVspoof 5 costs; calibration fitted on "
            f"{calibration.fitted_on!r})" if calibration is not None
            else f"P(spoof) >= {MetricsConfig.threshold} (this checkpoint has no calibration: no LLR)")
    note(f"{checkpoint}: verdict = {rule}; {summary.scored} file(s) scored, {summary.rejected} unreadable "
         f"in {summary.wall_s:.1f} s", output_format)


@click.command("train-default")
@click.option("--into", required=True, type=click.Path(file_okay=False),
              help="Folder for the checkpoint, its calibration and the model card's figures "
                   "(dfpipe/pretrained to ship them).")
@click.option("--lake", "lake", required=True, help="Working lake (kept: its tables back the model card).")
@click.option("--size", type=click.Choice(["small", "full"]), default=DefaultDetectorConfig.corpus_size,
              show_default=True, help="Built-in corpus size.")
@click.option("--epochs", type=int, default=None,
              help="Epochs for every arch (default: the recipe's, DefaultDetectorConfig.epochs_for).")
@click.option("--device", default="auto", show_default=True)
@friendly_errors
def train_default(into: str, lake: str, size: str, epochs: int | None, device: str) -> None:
    """Train the default detector: both mel models on the built-in corpus, the better on its
    OOD split shipped with its calibration (see docs/model-card.md).

    \b
    Example (the maintainer, before a release):
      dfpipe train-default --into dfpipe/pretrained --lake /scratch/default-lake
    """
    from dfpipe.flows.default_detector import train_default_detector

    config = DefaultDetectorConfig(corpus_size=size)
    if epochs is not None:
        config = DefaultDetectorConfig(corpus_size=size, epochs=epochs, epochs_by_arch={})
    summary = train_default_detector(into, lake, config, device=device, log=click.echo)
    for path in (summary.checkpoint, summary.calibration, summary.metrics):
        click.echo(f"wrote {path}")
