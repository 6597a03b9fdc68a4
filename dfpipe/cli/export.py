"""``dfpipe export``: the lake's clips in other toolkits' formats (``--lhotse DIR``)."""

from __future__ import annotations

import click

from dfpipe.cli._common import friendly_errors, lake_option


@click.command()
@lake_option
@click.option("--lhotse", "lhotse_dir", type=click.Path(file_okay=False),
              help="Write lhotse manifests (recordings + supervisions .jsonl.gz per corpus and split) into DIR.")
@click.option("--corpus", "corpora", multiple=True,
              help="Corpus to export (repeat for several; default: every corpus of the lake).")
@friendly_errors
def export(lake: str, lhotse_dir: str | None, corpora: tuple[str, ...]) -> None:
    """Export the lake's clips, with their labels, generators and splits.

    \b
    Examples:
      dfpipe export --lake lake --lhotse manifests/ --corpus itw
      dfpipe ingest --lake lake2 --corpus itw --format lhotse --allow-outside-root manifests/
    """
    if lhotse_dir is None:
        raise click.UsageError("nothing to export: pass --lhotse DIR")
    from dfpipe.export import export_lhotse

    summary = export_lhotse(lake, lhotse_dir, list(corpora))
    skipped = ", ".join(f"{reason} {n}" for reason, n in summary.skipped.items())
    click.echo(f"{summary.recordings} recordings in {len(summary.manifests)} manifests under {summary.out_dir}"
               + (f"; {summary.audio_files} embedded clips written to audio/" if summary.audio_files else "")
               + (f"; skipped {skipped}" if skipped else ""))
    for path in summary.manifests:
        click.echo(f"wrote {path}")
