"""``dfpipe query``: ad-hoc DuckDB SQL over the lake's tables."""

from __future__ import annotations

import click

from dfpipe.cli._common import (
    TABLE_FORMATS,
    TableData,
    format_option,
    friendly_errors,
    lake_option,
    print_tables,
)
from dfpipe.lake import Lake


@click.command()
@lake_option
@format_option(
    ("table", "line", *TABLE_FORMATS[1:]),
    "How to print the result. table: a table; on a terminal, one 'column: value' line per field "
    "(line) when the columns cannot fit its width; into a pipe or a file, every value whole. "
    "line: that record form always. csv: comma-separated with LF line ends. json: a list of objects.",
)
@click.argument("sql")
@friendly_errors
def query(lake: str, output_format: str, sql: str) -> None:
    """Run SQL over the lake; every table (clips, predictions, ...) is a view, and so is
    every materialised metric table (leaderboard, threshold_metrics, ... after
    ``dfpipe metrics``).

    \b
    Examples:
      dfpipe query --lake lake "select label, count(*) from clips group by 1"
      dfpipe query --lake lake --format csv "select * from leaderboard" > leaderboard.csv
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
    print_tables([TableData(names, rows)], output_format)
    if output_format in ("table", "line"):
        click.echo(f"{len(rows)} row(s)", err=True)
