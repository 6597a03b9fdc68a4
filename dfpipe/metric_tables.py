"""Where the metric tables live and how the metric SQL declares itself (foundation layer).

The metric stage (:mod:`dfpipe.metrics`) computes the tables; readers such as the report and
``dfpipe query`` only need to see them. Both need what this module holds:

* the names: ``LAKE/metrics/<relation>.parquet`` (:data:`METRICS_FOLDER`),
  ``LAKE/metrics.duckdb`` (:data:`METRICS_DATABASE`) and the one-row parameter relation
  ``metric_params`` (:data:`PARAMS_RELATION`);
* :func:`load_models`: the ``sql/*.sql`` files, their headers read and checked, in
  dependency order;
* :func:`attach_metrics`: the materialised tables (and the ``asv_*`` macros) as views on a
  :meth:`dfpipe.lake.Lake.connect` connection;
* :func:`metrics_connection` / :func:`limit_memory`: DuckDB's ``memory_limit`` and
  ``temp_directory`` (:class:`dfpipe.config.MetricsConfig`) on every connection the metric
  SQL runs on, so a large ``predictions`` table spills to disk instead of running out of
  memory.

Every ``sql/<relation>.sql`` file holds one relation named like the file and starts with
header comment lines, two of which are read here:

* ``-- materialized: view|table|intermediate|macro``: what the file becomes;
* ``-- depends_on: a, b, c``: every relation the file reads: other models, lake tables
  (:data:`dfpipe.schemas.TABLES`) and ``metric_params`` (a long list may continue on more
  ``-- depends_on:`` lines; nothing after the colon means none). Nothing is guessed from
  the SQL text; an undeclared name is caught when the models are checked in isolation
  (:func:`dfpipe.metrics.check_dependencies`).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import duckdb

from dfpipe.config import MetricsConfig
from dfpipe.errors import ConfigError
from dfpipe.lake import Lake, _sql_list
from dfpipe.schemas import TABLES

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
"""The repository's ``sql/`` folder (the metric SQL)."""

METRICS_FOLDER = "metrics"
METRICS_DATABASE = "metrics.duckdb"
PARAMS_RELATION = "metric_params"

Materialization = Literal["view", "table", "intermediate", "macro"]
_MATERIALIZED = re.compile(r"^--\s*materialized:\s*(view|table|intermediate|macro)\s*$", re.MULTILINE)
_DEPENDS_ON = re.compile(r"^--\s*depends_on:(.*)$", re.MULTILINE)
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True)
class SqlModel:
    """One ``sql/<name>.sql`` file.

    Attributes:
        name: relation (or macro) name, equal to the file stem.
        materialized: ``view``, ``table``, ``intermediate`` or ``macro`` (from the header
            line).
        sql: the file's text.
        refs: the other models it declares in ``-- depends_on:``.
        sources: the lake tables and ``metric_params`` it declares in ``-- depends_on:``.
    """

    name: str
    materialized: Materialization
    sql: str
    refs: frozenset[str]
    sources: frozenset[str] = frozenset()

    @property
    def depends_on(self) -> frozenset[str]:
        """Everything the file declares it reads (models and sources)."""
        return self.refs | self.sources


def source_relations() -> frozenset[str]:
    """Relations a model may read without a model of that name: the lake tables and
    ``metric_params``."""
    return frozenset(TABLES) | {PARAMS_RELATION}


def load_models(sql_dir: str | os.PathLike[str] = SQL_DIR) -> list[SqlModel]:
    """Read every ``*.sql`` model and return them in dependency order.

    The order follows each file's ``-- depends_on:`` line; ties are broken by name, so the
    order is deterministic.

    Raises:
        ConfigError: naming the file, for a bad name, a missing ``-- materialized:`` or
            ``-- depends_on:`` header, a declared name that is neither a model, a lake table
            nor ``metric_params``, or a dependency cycle.
    """
    paths = sorted(Path(sql_dir).glob("*.sql"))
    texts = {p.stem: p.read_text() for p in paths}
    sources = source_relations()
    models: dict[str, SqlModel] = {}
    for name, text in texts.items():
        if not _IDENTIFIER.match(name):
            raise ConfigError(f"sql/{name}.sql: a relation name must be a lowercase identifier")
        found = _MATERIALIZED.search(text)
        if found is None:
            raise ConfigError(f"sql/{name}.sql: add a '-- materialized: view|table|intermediate|macro' header line")
        declared = _declared(name, text)
        unknown = declared - set(texts) - sources
        if unknown:
            raise ConfigError(
                f"sql/{name}.sql: depends_on names {sorted(unknown)}, which are neither models in "
                f"{sql_dir} nor lake tables nor {PARAMS_RELATION}")
        models[name] = SqlModel(
            name, found.group(1), text.strip().rstrip(";"),  # type: ignore[arg-type]
            refs=frozenset(declared & set(texts)), sources=frozenset(declared - set(texts)),
        )
    ordered: list[SqlModel] = []
    done: set[str] = set()
    while len(ordered) < len(models):
        ready = sorted(n for n, m in models.items() if n not in done and m.refs <= done)
        if not ready:
            raise ConfigError(
                f"sql/: dependency cycle among {sorted(set(models) - done)} (see their depends_on lines)")
        for name in ready:
            ordered.append(models[name])
            done.add(name)
    return ordered


def _declared(name: str, text: str) -> frozenset[str]:
    lines = _DEPENDS_ON.findall(text)
    if not lines:
        raise ConfigError(
            f"sql/{name}.sql: add a '-- depends_on: a, b' header line naming every relation the "
            f"file reads (models, lake tables, {PARAMS_RELATION}; nothing after the colon for none)")
    names = [part.strip() for line in lines for part in line.split(",") if part.strip()]
    bad = [n for n in names if not _IDENTIFIER.match(n)]
    if bad:
        raise ConfigError(f"sql/{name}.sql: depends_on holds names that are not identifiers: {bad}")
    if name in names:
        raise ConfigError(f"sql/{name}.sql: dependency cycle: the file depends on itself")
    return frozenset(names)


def attach_metrics(con: duckdb.DuckDBPyConnection, lake: Lake) -> list[str]:
    """Make the materialised metric tables (and the ``asv_*`` macros) visible on ``con``.

    Call it on a :meth:`Lake.connect` connection (``dfpipe query`` does) after
    ``dfpipe metrics`` ran: each ``LAKE/metrics/<relation>.parquet`` becomes a view named
    ``<relation>``. Does nothing when no metrics were written.

    Returns:
        The relation names attached, sorted.
    """
    folder = f"{lake.root}/{METRICS_FOLDER}"
    if not lake.fs.exists(folder):
        return []
    names = []
    for path in sorted(p for p in lake.fs.find(folder) if p.endswith(".parquet")):
        name = path.rsplit("/", 1)[-1].removesuffix(".parquet")
        if not _IDENTIFIER.match(name):
            continue  # not written by compute_metrics
        # DDL takes no bound parameters; the path comes from the lake's own listing.
        con.execute(f"create or replace view {name} as select * from read_parquet({_sql_list([fs_uri(lake, path)])})")
        names.append(name)
    if PARAMS_RELATION in names:
        for model in load_models():
            if model.materialized == "macro":
                con.execute(model.sql)
    return names


def fs_uri(lake: Lake, path: str) -> str:
    """``path`` (from the lake's file system) as a URI DuckDB can read."""
    return path if lake.is_local else f"{lake.uri.split('://')[0]}://{path}"


SPILL_PREFIX = ".duckdb-spill-"
"""Name prefix of the folder :func:`spill_directory` makes when none is configured."""


@contextmanager
def spill_directory(config: MetricsConfig, lake: Lake | None = None) -> Iterator[str]:
    """The folder DuckDB spills to: ``config.temp_directory`` when set (made if missing,
    left in place), else a fresh folder inside a local lake's root (the lake's own disk,
    which holds the predictions being spilled) or in the system temporary folder (a remote
    lake, a lake folder not made yet, or none), removed on exit."""
    if config.temp_directory:
        os.makedirs(config.temp_directory, exist_ok=True)
        yield config.temp_directory
        return
    local = lake is not None and lake.is_local and os.path.isdir(lake.root)
    folder = tempfile.mkdtemp(prefix=SPILL_PREFIX, dir=lake.root if local else None)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def limit_memory(con: duckdb.DuckDBPyConnection, config: MetricsConfig, temp_directory: str) -> None:
    """Cap ``con`` at ``config.memory_limit`` (and ``config.threads``) and let it spill to
    ``temp_directory``."""
    con.execute("set memory_limit = ?", [config.memory_limit])
    con.execute("set temp_directory = ?", [temp_directory])
    if config.threads:
        con.execute("set threads = ?", [config.threads])


@contextmanager
def metrics_connection(lake: Lake, config: MetricsConfig) -> Iterator[duckdb.DuckDBPyConnection]:
    """A :meth:`Lake.connect` connection under ``config``'s memory limit and spill folder,
    closed (and an automatic spill folder removed) on exit."""
    with spill_directory(config, lake) as folder:
        con = lake.connect()
        try:
            limit_memory(con, config, folder)
            yield con
        finally:
            con.close()
