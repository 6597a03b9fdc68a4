"""``dfpipe export``: the lake's clips in other toolkits' formats (``--lhotse DIR``), and a mel
detector as one ONNX graph, front end included (``--onnx OUT``)."""

from __future__ import annotations

import click

from dfpipe.cli._common import friendly_errors, lake_option


@click.command()
@lake_option
@click.option("--lhotse", "lhotse_dir", type=click.Path(file_okay=False),
              help="Write lhotse manifests (recordings + supervisions .jsonl.gz per corpus and split) into DIR.")
@click.option("--corpus", "corpora", multiple=True,
              help="Corpus to export (repeat for several; default: every corpus of the lake).")
@click.option("--onnx", "onnx_path", type=click.Path(dir_okay=False),
              help="Write the checkpoint's mel detector, front end included, as one ONNX graph "
                   "(waveform (batch, 48000) float32 -> spoof_logit (batch,)); see docs/detect.md.")
@click.option("--checkpoint", default=None,
              help="The epoch-NNN.pt to export with --onnx (default: the detector shipped with dfpipe).")
@friendly_errors
def export(lake: str, lhotse_dir: str | None, corpora: tuple[str, ...], onnx_path: str | None,
           checkpoint: str | None) -> None:
    """Export the lake's clips, with their labels, generators and splits, or a detector as ONNX.

    \b
    Examples:
      dfpipe export --lake lake --lhotse manifests/ --corpus itw
      dfpipe ingest --lake lake2 --corpus itw --format lhotse --allow-outside-root manifests/
      dfpipe export --onnx detector.onnx --checkpoint lake/checkpoints/RUN/epoch-050.pt
    """
    if lhotse_dir is None and onnx_path is None:
        raise click.UsageError("nothing to export: pass --lhotse DIR or --onnx OUT")
    if onnx_path is not None:
        from dfpipe.onnx_export import export_onnx
        from dfpipe.shipped_model import default_checkpoint

        done = export_onnx(checkpoint or default_checkpoint(), onnx_path)
        parity = ("onnxruntime not installed: parity not checked" if done.max_abs_diff is None
                  else f"max |logit - PyTorch| {done.max_abs_diff:.2g}")
        click.echo(f"wrote {done.path} ({done.arch}, {done.size_bytes / 1e6:.1f} MB; {parity})"
                   + (f" and {done.calibration}" if done.calibration else ""))
        if lhotse_dir is None:
            return
    from dfpipe.export import export_lhotse

    summary = export_lhotse(lake, lhotse_dir, list(corpora))
    skipped = ", ".join(f"{reason} {n}" for reason, n in summary.skipped.items())
    click.echo(f"{summary.recordings} recordings in {len(summary.manifests)} manifests under {summary.out_dir}"
               + (f"; {summary.audio_files} embedded clips written to audio/" if summary.audio_files else "")
               + (f"; skipped {skipped}" if skipped else ""))
    for path in summary.manifests:
        click.echo(f"wrote {path}")
