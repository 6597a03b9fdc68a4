"""The lake: Parquet tables under one root (a local folder or any fsspec URL).

Layout::

    ROOT/<table>/[<key>=<value>/...]part-<shard>.parquet

A table is a folder of shard files; each shard is the output of one unit of work (a batch
of files probed, a batch of clips encoded, an epoch's predictions) and is named by a
deterministic id of that work, so a re-run can ask :meth:`Lake.has_shard` and skip it.
The ``key=value`` folders only organise files (by corpus, run...); every column is stored
in the files themselves, so readers never infer columns from paths.

Writes are atomic: a shard is written to a temporary name that no reader globs
(``*.parquet.tmp-<pid>-<random>``, see :func:`is_temporary`) and renamed into place, so a
killed run leaves either the whole shard or nothing. :func:`atomic_write` is that commit, and
the one every file the pipeline writes (shards, checkpoints, metrics, manifests) goes
through. Two test hooks SIGKILL its process at a chosen commit, for the crash-consistency
tests: :data:`KILL_AFTER_COMMITS_ENV` right after the N-th commit (a kill *at* a commit
boundary), :data:`KILL_BEFORE_COMMIT_ENV` after the N-th temporary file is written but before
it is renamed (a kill *between* commits, leaving an orphan temporary file behind).
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import uuid
from collections.abc import Callable, Mapping
from typing import Literal

import duckdb
import fsspec
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from dfpipe.errors import LakeError
from dfpipe.schemas import TABLES

WriteMode = Literal["error", "skip", "overwrite"]
_SAFE_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")

KILL_AFTER_COMMITS_ENV = "DFPIPE_KILL_AFTER_COMMITS"
"""Test hook: ``N`` makes :func:`atomic_write` SIGKILL its process right after its N-th commit."""
KILL_BEFORE_COMMIT_ENV = "DFPIPE_KILL_BEFORE_COMMIT"
"""Test hook: ``N`` makes :func:`atomic_write` SIGKILL its process on its N-th commit, once the
temporary file is whole and before it is renamed into place."""
TEMPORARY_INFIX = ".tmp-"
"""Marks a temporary name: ``<final>.tmp-<pid>-<random>`` (never ends like a committed file)."""
_commits = 0


def is_temporary(path: str) -> bool:
    """True for a name :func:`atomic_write` writes before its rename (what a killed writer
    may leave behind; no reader of the lake lists it, and it may be deleted whenever no
    writer runs)."""
    return TEMPORARY_INFIX in path.rsplit("/", 1)[-1]


def commit_count() -> int:
    """Commits :func:`atomic_write` made in this process (what the kill hooks count)."""
    return _commits


def _kill_at(hook: str, commit: int) -> None:
    """SIGKILL this process when the environment variable ``hook`` is set to ``commit`` or less."""
    value = os.environ.get(hook)
    if value and commit >= int(value):
        os.kill(os.getpid(), signal.SIGKILL)


def atomic_write(final: str, write: Callable[[str], object], fs: fsspec.AbstractFileSystem | None = None) -> str:
    """Run ``write(tmp)`` on a temporary path next to ``final``, then rename it into place.

    The temporary name (``<final>.tmp-<pid>-<random>``, :func:`is_temporary`) is one no reader looks for, so a
    killed writer leaves either the whole file under ``final`` or nothing; a temporary file
    left by a failed ``write`` is removed. Local files are renamed with :func:`os.replace`
    (atomic on POSIX), others with ``fs.mv`` (object stores: the temp key is invisible to globs).

    Args:
        final: the path to commit (on ``fs``; a local path when ``fs`` is ``None``).
        write: writes the whole file at the path it is given.
        fs: the filesystem of ``final``; ``None``: the local one.

    Returns:
        ``final``.
    """
    global _commits
    fs = fs or fsspec.filesystem("file")
    tmp = f"{final}{TEMPORARY_INFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        write(tmp)
        _kill_at(KILL_BEFORE_COMMIT_ENV, _commits + 1)
        if "file" in _protocols(fs):
            os.replace(tmp, final)  # atomic on POSIX
        else:
            fs.mv(tmp, final)
    finally:
        if fs.exists(tmp):
            fs.rm(tmp)
    _commits += 1
    _kill_at(KILL_AFTER_COMMITS_ENV, _commits)
    return final



def write_bytes_atomic(uri: str, data: bytes) -> str:
    """Write ``data`` to ``uri`` (a path or fsspec URL; its folder is made) with
    :func:`atomic_write`; returns ``uri``. Checkpoints and small JSON sidecars go through it."""
    fs, path = fsspec.core.url_to_fs(uri)
    fs.makedirs(os.path.dirname(path), exist_ok=True)

    def write(tmp: str) -> None:
        with fs.open(tmp, "wb") as sink:
            sink.write(data)

    atomic_write(path, write, fs)
    return uri

def stable_id(*parts: str | bytes, length: int = 32) -> str:
    """A deterministic hex id of ``parts`` (sha256, truncated to ``length`` hex digits).

    Parts are length-prefixed before hashing so ``("ab", "c")`` and ``("a", "bc")`` differ.
    A string is hashed as its bytes on disk (``surrogateescape``, as ``os.fsencode``), so a file
    name that is not valid UTF-8 has an id too, distinct from every other name.

    >>> stable_id("corpus", "file.wav", length=8)
    '6c9b300f'
    """
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8", "surrogateescape") if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()[:length]


def check_name(kind: str, value: str) -> str:
    """Return ``value`` if it is safe as one path segment (corpus, run, shard names).

    Raises:
        LakeError: naming ``kind`` and the value, when it holds anything but letters,
            digits, ``.``, ``_`` and ``-`` (no ``/``, no ``..``).
    """
    if not _SAFE_SEGMENT.match(value) or value in {".", ".."}:
        raise LakeError(
            f"{kind} {value!r} is not a safe name: use letters, digits, '.', '_' and '-' only"
        )
    return value


class Lake:
    """A set of Parquet tables under ``root``.

    Args:
        root: local folder or fsspec URL (``s3://bucket/lake``, ``memory://x``).
        storage_options: passed to fsspec for remote roots (credentials, endpoint).

    Example:
        >>> lake = Lake("/tmp/lake")                                   # doctest: +SKIP
        >>> lake.write_shard("rejects", table, shard="abc")            # doctest: +SKIP
        >>> lake.connect().sql("select count(*) from rejects")         # doctest: +SKIP
    """

    def __init__(self, root: str, *, storage_options: Mapping[str, object] | None = None) -> None:
        options = dict(storage_options or {})
        if fsspec.core.split_protocol(str(root))[0] not in (None, "file", "local"):
            # Many processes commit to one lake (Dask workers, other commands): a listing this
            # process cached goes stale, and a shard committed since then would look missing
            # (has_shard False; DuckDB "No files found" on a file the lake just listed).
            options.setdefault("use_listings_cache", False)
        self.fs, path = fsspec.core.url_to_fs(str(root), **options)
        self.is_local = "file" in _protocols(self.fs)
        self.root = os.path.abspath(path) if self.is_local else path.rstrip("/")
        self.uri = self.root if self.is_local else f"{_protocols(self.fs)[0]}://{self.root}"

    def __repr__(self) -> str:
        return f"Lake({self.uri!r})"

    # -- paths ---------------------------------------------------------------------------
    def table_path(self, table: str, partition: Mapping[str, str] | None = None) -> str:
        """Folder of ``table`` (or of one of its partitions)."""
        _schema(table)
        parts = [self.root, table]
        for key, value in (partition or {}).items():
            parts.append(f"{check_name('partition key', key)}={check_name(key, value)}")
        return "/".join(parts)

    def shard_path(self, table: str, shard: str, partition: Mapping[str, str] | None = None) -> str:
        """Path of one shard file."""
        return f"{self.table_path(table, partition)}/part-{check_name('shard', shard)}.parquet"

    def has_shard(self, table: str, shard: str, partition: Mapping[str, str] | None = None) -> bool:
        """True when the shard was committed (a re-run should skip its work)."""
        return self.fs.exists(self.shard_path(table, shard, partition))

    def files(self, table: str, partition: Mapping[str, str] | None = None) -> list[str]:
        """Committed shard files of a table (or partition), sorted; never temporary files."""
        base = self.table_path(table, partition)
        if not self.fs.exists(base):
            return []
        return sorted(p for p in self.fs.find(base) if p.endswith(".parquet") and not is_temporary(p))

    # -- writing -------------------------------------------------------------------------
    def write_shard(
        self,
        table: str,
        data: pa.Table,
        *,
        shard: str,
        partition: Mapping[str, str] | None = None,
        mode: WriteMode = "error",
        row_group_size: int | None = None,
    ) -> str | None:
        """Write ``data`` as one shard of ``table``, atomically.

        Args:
            table: a name in :data:`dfpipe.schemas.TABLES`; ``data`` is cast to its schema
                (extra columns are an error, missing nullable columns become NULL).
            shard: deterministic id of the unit of work that produced ``data``.
            partition: optional ``{key: value}`` folders (organisation only).
            mode: ``"error"`` (default) refuses to replace a committed shard, ``"skip"``
                leaves it and returns ``None``, ``"overwrite"`` replaces it atomically.
            row_group_size: rows per Parquet row group (small for wide binary columns so
                readers can stream).

        Returns:
            The committed path, or ``None`` when skipped.

        Raises:
            LakeError: unknown table, bad names, schema mismatch, or an existing shard
                under ``mode="error"``.
        """
        final = self.shard_path(table, shard, partition)
        if self.fs.exists(final):
            if mode == "skip":
                return None
            if mode == "error":
                raise LakeError(f"shard {final} already exists (use mode='skip' or 'overwrite')")
        aligned = conform(table, data)
        self.fs.makedirs(self.table_path(table, partition), exist_ok=True)

        def write(tmp: str) -> None:
            with self.fs.open(tmp, "wb") as sink:
                pq.write_table(aligned, sink, compression="zstd", row_group_size=row_group_size)

        return atomic_write(final, write, self.fs)

    # -- reading -------------------------------------------------------------------------
    def dataset(self, table: str, partition: Mapping[str, str] | None = None) -> ds.Dataset:
        """A pyarrow dataset over the table's committed files (empty when there are none)."""
        schema = _schema(table)
        files = self.files(table, partition)
        if not files:
            return ds.dataset(schema.empty_table())
        return ds.dataset(files, schema=schema, format="parquet", filesystem=self.fs)

    def read(
        self,
        table: str,
        *,
        columns: list[str] | None = None,
        filter: ds.Expression | None = None,
        partition: Mapping[str, str] | None = None,
    ) -> pa.Table:
        """Read a whole table (or the filtered part) into memory; typed even when empty."""
        return self.dataset(table, partition).to_table(columns=columns, filter=filter)

    def connect(self, database: str = ":memory:") -> duckdb.DuckDBPyConnection:
        """A DuckDB connection with one view per lake table (empty views for absent ones).

        Tables are read with ``union_by_name`` so files written by older versions with
        fewer columns still line up.
        """
        con = duckdb.connect(database)
        if not self.is_local:
            con.register_filesystem(self.fs)
        for table in TABLES:
            files = self.files(table)
            if files:
                paths = files if self.is_local else [f"{self.uri.split('://')[0]}://{f}" for f in files]
                # DDL cannot take bound parameters; the paths come from the lake's own
                # listing and are quoted by _sql_list.
                con.execute(
                    f"create or replace view {table} as select * from read_parquet("
                    f"{_sql_list(paths)}, union_by_name = true, hive_partitioning = false)"
                )
            else:
                con.register(f"_empty_{table}", TABLES[table].empty_table())
                con.execute(f"create or replace view {table} as select * from _empty_{table}")
        return con


def conform(table: str, data: pa.Table) -> pa.Table:
    """Cast ``data`` to the schema of ``table``: order columns, add missing nullable ones.

    Raises:
        LakeError: naming the column, for unknown columns, missing required columns or
            values that cannot be cast.
    """
    schema = _schema(table)
    unknown = set(data.column_names) - set(schema.names)
    if unknown:
        raise LakeError(f"{table}: unknown columns {sorted(unknown)}")
    columns = []
    for schema_field in schema:
        if schema_field.name in data.column_names:
            column = data.column(schema_field.name)
        elif schema_field.nullable:
            column = pa.nulls(data.num_rows, schema_field.type)
        else:
            raise LakeError(f"{table}: required column {schema_field.name!r} is missing")
        try:
            column = column.cast(schema_field.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise LakeError(f"{table}.{schema_field.name}: {exc}") from exc
        if not schema_field.nullable and column.null_count:
            raise LakeError(f"{table}.{schema_field.name}: {column.null_count} NULLs in a required column")
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)


def _schema(table: str) -> pa.Schema:
    try:
        return TABLES[table]
    except KeyError:
        raise LakeError(f"unknown table {table!r}; known: {sorted(TABLES)}") from None


def _protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    return (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)


def _sql_list(paths: list[str]) -> str:
    # File paths come from the lake's own listing, not from users; still quote them safely.
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"
