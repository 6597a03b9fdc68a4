"""Options and helpers shared by the ``dfpipe`` commands."""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import click

from dfpipe.config import (
    DASK_ADDRESS_ENV,
    DEFAULT_LAKE,
    IN_PROCESS_SHARDS_ENV,
    LAKE_ENV,
    DaskConfig,
)
from dfpipe.errors import DfpipeError


def lake_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--lake``: the lake root (env ``DFPIPE_LAKE``; default ``./lake``)."""
    return click.option(
        "--lake",
        envvar=LAKE_ENV,
        default=DEFAULT_LAKE,
        show_default=True,
        help="Lake root: a folder or an fsspec URL (s3://bucket/lake).",
    )(func)


def dask_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--dask-address`` / ``--workers`` / ``--in-process-shards``, turned into a ``dask_config`` argument."""

    @click.option(
        "--dask-address",
        envvar=DASK_ADDRESS_ENV,
        default=None,
        help="Run on this Dask scheduler (tcp://host:8786), however small the work.",
    )
    @click.option("--workers", type=int, default=None, help="LocalCluster workers (default: one per core).")
    @click.option("--in-process-shards", type=click.IntRange(min=0), envvar=IN_PROCESS_SHARDS_ENV,
                  default=DaskConfig.in_process_shards, show_default=True,
                  help="Work of at most this many shards runs in this process, without starting a "
                       "LocalCluster (0: always start one).")
    @functools.wraps(func)
    def wrapper(*args: Any, dask_address: str | None, workers: int | None, in_process_shards: int,
                **kwargs: Any) -> Any:
        kwargs["dask_config"] = DaskConfig(address=dask_address, n_workers=workers,
                                           in_process_shards=in_process_shards)
        return func(*args, **kwargs)

    return wrapper


def friendly_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Print a :class:`DfpipeError` as one clear line (``Error: ...`` on stderr) and exit 1, not a
    traceback (a flow's own log of it is dropped by :mod:`dfpipe.flows._common`)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DfpipeError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


# -- printed tables ----------------------------------------------------------------------
TABLE_FORMATS = ("table", "csv", "json")
"""``--format`` of every command that prints a table."""

_FORMAT_HELP = ("table: a table (into a pipe or a file: every value whole, never cut to a width); "
                "csv: comma-separated, LF line ends; json: a list of objects (an object of lists for "
                "several tables).")


def format_option(choices: Sequence[str] = TABLE_FORMATS, help: str = _FORMAT_HELP) -> Callable[..., Any]:
    """``--format``: how a command prints its tables, passed as ``output_format``."""
    return click.option("--format", "output_format", type=click.Choice(list(choices)), default=choices[0],
                        show_default=True, help=help)


def cell(value: object, null: str = "NULL") -> str:
    """A value as a table shows it: ``null`` for None, floats to 6 significant digits."""
    if value is None:
        return null
    return f"{value:.6g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class TableData:
    """One table to print.

    Attributes:
        columns: column names; rows: raw values (csv and json print them as they are).
        title: shown above the table; names the table in csv (``# title``) and json output.
        display: per-column formatting for the table view (``value -> str``, never given
            None); other columns use :func:`cell`. None is shown as ``null``.
    """

    columns: Sequence[str]
    rows: Sequence[Sequence[object]]
    title: str | None = None
    display: Mapping[str, Callable[[object], str]] = field(default_factory=dict)
    null: str = "NULL"

    def cells(self) -> list[list[str]]:
        formats = [self.display.get(name) for name in self.columns]
        return [[self.null if v is None else fmt(v) if fmt else cell(v) for fmt, v in zip(formats, row)]
                for row in self.rows]


def print_tables(tables: Sequence[TableData], output_format: str = "table") -> None:
    """Print ``tables`` to stdout in ``output_format``: the one table printer of the commands.

    - ``table``: rich tables. On a terminal they fit its width, and a table whose columns
      cannot (8 characters each) is printed as ``line`` records instead; into a pipe or a file
      every value is printed whole, however wide (no trailing spaces).
    - ``line``: one ``column: value`` line per field, ``-- row N`` before each row.
    - ``csv``: a header and the rows, LF line ends; several tables are blocks separated by a
      blank line, each headed ``# title``. None is an empty field.
    - ``json``: one table is a list of objects; several an object ``{title: [...]}``. None,
      NaN and infinities are ``null``.
    """
    if output_format == "json":
        records = {t.title or str(i): [dict(zip(t.columns, map(_json_value, row))) for row in t.rows]
                   for i, t in enumerate(tables)}
        payload = next(iter(records.values())) if len(tables) == 1 else records
        json.dump(payload, sys.stdout, indent=1, default=str, allow_nan=False)
        sys.stdout.write("\n")
        return
    if output_format == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        for i, table in enumerate(tables):
            if len(tables) > 1:
                sys.stdout.write(("\n" if i else "") + f"# {table.title or i}\n")
            writer.writerow(table.columns)
            writer.writerows(["" if v is None else v for v in row] for row in table.rows)
        return
    from dfpipe.progress import stdout_is_terminal

    terminal = stdout_is_terminal()
    for table in tables:
        _print_table(table, output_format, terminal)


def _print_table(table: TableData, output_format: str, terminal: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    rows = table.cells()
    console = Console() if terminal else Console(file=io.StringIO(), width=_WIDE, no_color=True)
    if output_format == "line" or (terminal and len(table.columns) * 8 > console.width):
        if table.title:
            click.echo(table.title)
        width = max((len(name) for name in table.columns), default=0)
        for number, row in enumerate(rows, 1):
            click.echo(f"-- row {number}")
            for name, value in zip(table.columns, row):
                click.echo(f"{name:>{width}}: {value}")
        return
    rich_table = Table(*table.columns, title=table.title)
    for row in rows:
        rich_table.add_row(*row)
    console.print(rich_table)
    if not terminal:  # whole values, however wide; rich pads the title line with spaces
        click.echo("\n".join(line.rstrip() for line in console.file.getvalue().splitlines()))


_WIDE = 1_000_000
"""Console width off a terminal: wide enough that rich never cuts or wraps a cell."""


def _json_value(value: object) -> object:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def note(message: str, output_format: str = "table") -> None:
    """A line beside a table: on stdout with ``table``, on stderr with csv/json (so the
    machine-readable stdout holds only the data)."""
    click.echo(message, err=output_format not in ("table", "line"))


def split_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--split`` (repeatable), a ``splits`` tuple: only clips of these ``clips.split`` values."""
    return click.option(
        "--split", "splits", multiple=True,
        help="Only clips of this clips.split value (repeatable: --split train --split dev); default every "
             "clip. A later run with more splits makes only the clips still missing.",
    )(func)


def splits_text(splits: Sequence[str]) -> str:
    """`` (splits a, b)`` after a corpus in a summary line; empty for every clip."""
    return f" (splits {', '.join(splits)})" if splits else ""
