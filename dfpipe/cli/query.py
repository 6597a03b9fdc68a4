"""``dfpipe query``: ad-hoc DuckDB SQL over the lake's tables."""

from __future__ import annotations

import json
import sys

import click

from dfpipe.cli._common import friendly_errors, lake_option
from dfpipe.lake import Lake


@click.command()
@lake_option
@click.option(
    "--format", "output_format", type=click.Choice(["table", "line", "csv", "json"]), default="table",
    show_default=True, help="How to print the result; 'line' prints one 'column: value' line per field "
    "(what 'table' falls back to when the columns cannot fit the terminal).",
)
@click.argument("sql")
@friendly_errors
def query(lake: str, output_format: str, sql: str) -> None:
    """Run SQL over the lake; every table (clips, predictions, ...) is a view, and so is
    every materialised metric table (leaderboard, threshold_metrics, ... after
    ``dfpipe metrics``).

    \b
    Example:
      dfpipe query --lake lake "select label, count(*) from clips group by 1"
    """
    import duckdb

    from dfpipe.metrics import attach_metrics

    lake_ = Lake(lake)
    con = lake_.connect()
    attach_metrics(con, lake_)  # the materialised metric tables, after `dfpipe metrics`
    try:
        result = con.execute(sql)
    except duckdb.Error as exc:
        raise click.ClickException(f"SQL error: {exc}") from exc
    if result.description is None:
        return
    names = [d[0] for d in result.description]
    rows = result.fetchall()
    if output_format == "json":
        json.dump([dict(zip(names, row)) for row in rows], sys.stdout, default=str, indent=1)
        sys.stdout.write("\n")
    elif output_format == "csv":
        import csv

        writer = csv.writer(sys.stdout)
        writer.writerow(names)
        writer.writerows(rows)
    else:
        from rich.console import Console
        from rich.table import Table

        console = Console()
        cells = [["NULL" if v is None else f"{v:.6g}" if isinstance(v, float) else str(v) for v in row]
                 for row in rows]
        # below ~8 characters a column shows nothing readable: print records instead
        if output_format == "line" or len(names) * 8 > console.width:
            width = max(len(name) for name in names)
            for number, row in enumerate(cells, 1):
                click.echo(f"-- row {number}")
                for name, value in zip(names, row):
                    click.echo(f"{name:>{width}}: {value}")
        else:
            table = Table(*names)
            for row in cells:
                table.add_row(*row)
            console.print(table)
        click.echo(f"{len(rows)} row(s)", err=True)
