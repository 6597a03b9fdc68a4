"""``dfpipe query``: ad-hoc DuckDB SQL over the lake's tables, read-only unless asked.

Read-only means DuckDB itself touches no file: every lake table and materialised metric
table is a view over an Arrow dataset (:meth:`dfpipe.lake.Lake.dataset`, so pyarrow reads
the lake, local or remote), then ``enable_external_access`` is turned off and the
configuration locked. DuckDB's ``allowed_paths`` would let the views read the lake's files
directly, but it lets ``COPY ... TO`` overwrite those same files, so it is not used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    import duckdb

READ_ONLY_HINT = ("dfpipe query is read-only: the lake's tables and no other file, no ATTACH, "
                  "INSTALL/LOAD or SET; --allow-writes lifts this")


@click.command()
@lake_option
@format_option(
    ("table", "line", *TABLE_FORMATS[1:]),
    "How to print the result. table: a table; on a terminal, one 'column: value' line per field "
    "(line) when the columns cannot fit its width; into a pipe or a file, every value whole. "
    "line: that record form always. csv: comma-separated with LF line ends. json: a list of objects.",
)
@click.option("--allow-writes", is_flag=True,
              help="Give the SQL DuckDB's full access, with your rights: reading and writing any file "
                   "(COPY ... TO, read_text, ATTACH), INSTALL/LOAD and SET. Off by default: the SQL "
                   "reads the lake's tables and nothing else.")
@click.argument("sql")
@friendly_errors
def query(lake: str, output_format: str, allow_writes: bool, sql: str) -> None:
    """Run SQL over the lake; every table (clips, predictions, ...) is a view, and so is
    every materialised metric table (leaderboard, threshold_metrics, ... after
    ``dfpipe metrics``).

    Read-only by default: the SQL sees the lake's tables and cannot read or write any
    other file, attach a database, install or load an extension, or change a setting
    (each is refused with one line). ``--allow-writes`` lifts that.

    \b
    Examples:
      dfpipe query --lake lake "select label, count(*) from clips group by 1"
      dfpipe query --lake lake --format csv "select * from leaderboard" > leaderboard.csv
      dfpipe query --lake lake --allow-writes "copy clips to 'clips.csv'"
    """
    import duckdb

    from dfpipe.metrics import attach_metrics

    lake_ = Lake(lake)
    if allow_writes:
        con = lake_.connect()
        attach_metrics(con, lake_)  # the materialised metric tables, after `dfpipe metrics`
    else:
        con = read_only_connection(lake_)
    try:
        result = con.execute(sql)
    except duckdb.Error as exc:
        if not allow_writes and _refused(exc):
            raise click.ClickException(f"refused: {str(exc).splitlines()[0]} ({READ_ONLY_HINT})") from exc
        raise click.ClickException(f"SQL error: {exc}") from exc
    if result.description is None:
        return
    names = [d[0] for d in result.description]
    rows = result.fetchall()
    print_tables([TableData(names, rows)], output_format)
    if output_format in ("table", "line"):
        click.echo(f"{len(rows)} row(s)", err=True)


def read_only_connection(lake: Lake) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with a view per lake table and per materialised metric
    table (plus the ``asv_*`` macros), every view reading through pyarrow, then DuckDB's
    own file access off (``enable_external_access = false``) and its settings locked."""
    import duckdb
    import pyarrow.dataset as ds

    from dfpipe.metrics import METRICS_FOLDER, attach_metrics
    from dfpipe.schemas import TABLES

    con = duckdb.connect()
    if not lake.is_local:
        con.register_filesystem(lake.fs)  # attach_metrics binds its views on the lake's files
    for table in TABLES:
        _arrow_view(con, table, lake.dataset(table))
    for name in attach_metrics(con, lake):  # views over LAKE/metrics/*.parquet, and the macros
        _arrow_view(con, name, ds.dataset(f"{lake.root}/{METRICS_FOLDER}/{name}.parquet", format="parquet",
                                          filesystem=lake.fs))
    # The order matters: the views exist first, then file access goes, then the lock keeps
    # the SQL from turning it back on.
    con.execute("set enable_external_access = false")
    con.execute("set lock_configuration = true")
    return con


def _arrow_view(con: duckdb.DuckDBPyConnection, name: str, data: object) -> None:
    # DDL takes no bound parameters; the names are the lake's own table names.
    con.register(f"_arrow_{name}", data)
    con.execute(f"create or replace view {name} as select * from _arrow_{name}")


def _refused(exc: Exception) -> bool:
    """True for DuckDB's answers to what the read-only mode forbids."""
    import duckdb

    return isinstance(exc, duckdb.PermissionException) or "configuration has been locked" in str(exc)
