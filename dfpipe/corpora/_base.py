"""What every corpus adapter shares: the item it yields, label/split rules, safe paths.

Adapters never drop an input silently: a row or file they cannot turn into a
:class:`CorpusItem` becomes a :class:`CorpusReject` (reason + detail) that ingest writes to
the ``rejects`` table.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dfpipe.config import SPLITS
from dfpipe.errors import ConfigError, RejectedInput

AUDIO_SUFFIXES = frozenset(
    {".wav", ".flac", ".mp3", ".m4a", ".mp4", ".aac", ".ogg", ".oga", ".opus", ".webm", ".wma",
     ".aif", ".aiff", ".au", ".amr", ".g722", ".3gp"}
)
"""Suffixes that mark a path as meant to be audio (a *directory* so named is a reject)."""

_BONAFIDE = frozenset({"bonafide", "bona-fide", "bona fide", "bona_fide", "real", "human",
                       "genuine", "authentic"})
_SPOOF = frozenset({"spoof", "spoofed", "fake", "deepfake", "synthetic", "generated", "ai"})
_SPLIT_ALIASES = {"val": "dev", "valid": "dev", "validation": "dev", "development": "dev",
                  "evaluation": "eval", "training": "train"}


@dataclass(frozen=True)
class CorpusItem:
    """One audio file of a corpus, as its metadata describes it (before probing).

    Attributes:
        source: absolute path of the file (symlinks not resolved: the path the corpus names).
        relpath: path relative to the corpus root, ``/``-separated.
        label: ``bonafide`` or ``spoof`` (already normalised).
        origin: where the item was declared: ``meta.csv:12`` for a manifest row, the
            relpath for a file found by walking a folder. Names duplicate-entry rejects.
        split, generator, family, speaker, language: ``None`` when the corpus is silent.
        attributes: every other original column, as strings.
        size_bytes: the source's size when the adapter knows it without a ``stat`` (audio
            embedded in a Parquet row); ``None``: ingest stats the file.
    """

    source: str
    relpath: str
    label: str
    origin: str
    split: str | None = None
    generator: str | None = None
    family: str | None = None
    speaker: str | None = None
    language: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    size_bytes: int | None = None


@dataclass(frozen=True)
class CorpusReject:
    """An input the adapter could not use: ``source`` is the file or manifest row."""

    source: str
    reason: str
    detail: str


CorpusEntry = CorpusItem | CorpusReject


def normalise_label(value: str) -> str:
    """Map a corpus' label spelling to ``bonafide`` / ``spoof``.

    Case and surrounding blanks are ignored. Numeric labels (``0``/``1``) are refused on
    purpose: corpora disagree on which class is 1.

    >>> normalise_label(" Bona-Fide "), normalise_label("FAKE")
    ('bonafide', 'spoof')

    Raises:
        RejectedInput: ``bad_label``, naming the value and the accepted spellings.
    """
    key = value.strip().lower()
    if key in _BONAFIDE:
        return "bonafide"
    if key in _SPOOF:
        return "spoof"
    raise RejectedInput(
        "bad_label",
        f"label {value!r} is neither bona fide ({', '.join(sorted(_BONAFIDE))}) nor spoof "
        f"({', '.join(sorted(_SPOOF))}); numeric labels are ambiguous, spell the class out",
    )


def normalise_split(value: str | None) -> str | None:
    """Map a split spelling to one of :data:`dfpipe.config.SPLITS` (empty -> ``None``).

    Raises:
        RejectedInput: ``bad_split`` for anything else.
    """
    if value is None or not value.strip():
        return None
    key = value.strip().lower()
    key = _SPLIT_ALIASES.get(key, key)
    if key not in SPLITS:
        raise RejectedInput("bad_split", f"split {value!r} is not one of {', '.join(SPLITS)}")
    return key


def blank_to_none(value: str | None) -> str | None:
    """Strip a metadata value; empty strings and ``-`` (ASVspoof's 'none') become ``None``."""
    if value is None:
        return None
    value = value.strip()
    return None if value in {"", "-"} else value


def corpus_root(path: str | os.PathLike[str]) -> Path:
    """The corpus root as an absolute path (symlinks kept).

    Raises:
        ConfigError: when it is not an existing folder.
    """
    root = Path(os.path.abspath(path))
    if not root.is_dir():
        raise ConfigError(f"corpus root {root} is not a folder")
    return root


def resolve_member(root: Path, raw: str, *, allow_outside_root: bool = False) -> tuple[str, str]:
    """The absolute path and relpath of a file a manifest names, relative to ``root``.

    ``raw`` may be relative (to ``root``) or absolute. The real path (symlinks followed)
    must stay inside the real root, so ``../x``, ``/etc/passwd`` and a symlink pointing out
    are refused unless ``allow_outside_root``.

    Raises:
        RejectedInput: ``outside_root`` (escapes the root) or ``missing`` (no such path).
    """
    raw = raw.strip()
    if not raw:
        raise RejectedInput("missing", "the manifest row names no file (empty path)")
    path = Path(os.path.normpath(root / raw))  # root / absolute == absolute
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if not allow_outside_root and os.path.commonpath([real_root, real]) != real_root:
        raise RejectedInput(
            "outside_root",
            f"{raw!r} resolves to {real}, outside the corpus root {real_root}; move it in or "
            "pass --allow-outside-root",
        )
    if not os.path.lexists(path):
        raise RejectedInput("missing", f"{path} does not exist (named as {raw!r})")
    return str(path), Path(os.path.relpath(path, root)).as_posix()


def walk_files(top: Path) -> Iterator[Path]:
    """Every path under ``top`` that is meant as a file, sorted, without following links.

    Yields regular files, symlinks (files or folders: :func:`resolve_member` decides), and
    folders whose name has an audio suffix (ingest rejects them as ``not_a_file``), so no
    input vanishes from the walk.
    """
    for dirpath, dirnames, filenames in os.walk(top):
        here = Path(dirpath)
        keep = []
        for name in sorted(dirnames):
            sub = here / name
            if sub.is_symlink() or sub.suffix.lower() in AUDIO_SUFFIXES:
                yield sub
            else:
                keep.append(name)
        dirnames[:] = keep
        for name in sorted(filenames):
            yield here / name


def open_manifest(path: Path) -> Iterator[str]:
    """Lines of a text manifest (utf-8, BOM tolerated), with newlines kept for ``csv``."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        yield from handle


def find_manifest(path: str | os.PathLike[str], name: str) -> tuple[Path, Path]:
    """``(root, manifest)`` from either the corpus folder or the manifest file itself.

    Raises:
        ConfigError: naming the expected file when it is not there.
    """
    given = Path(os.path.abspath(path))
    manifest = given if given.is_file() else given / name
    if not manifest.is_file():
        raise ConfigError(f"{manifest} not found: expected the corpus folder holding {name}")
    return manifest.parent, manifest


RowParser = Callable[[Any], tuple[str, dict[str, Any]]]
"""Turns one manifest row into ``(path as written, CorpusItem fields)``; raises
:class:`RejectedInput` for a bad row."""


def manifest_entries(
    root: Path,
    manifest: Path,
    rows: Iterable[tuple[int, Any]],
    parse: RowParser,
    *,
    allow_outside_root: bool = False,
) -> Iterator[CorpusEntry]:
    """Items (or rejects) of numbered manifest rows: the loop every manifest adapter shares.

    A row that fails to parse, names a missing file or a path outside ``root``, or names a
    file an earlier row already named becomes a :class:`CorpusReject` whose ``source`` is
    ``<manifest>:<line>``.

    Args:
        root: corpus root; relative paths in the manifest are relative to it.
        manifest: the manifest file (its name prefixes ``origin``).
        rows: ``(line number, row)`` pairs, 1-based line numbers as in an editor.
        parse: the adapter's pure row parser.
        allow_outside_root: see :func:`resolve_member`.
    """
    seen: dict[str, str] = {}
    for line, row in rows:
        origin = f"{manifest.name}:{line}"
        try:
            raw, fields = parse(row)
            source, relpath = resolve_member(root, raw, allow_outside_root=allow_outside_root)
            if source in seen:
                raise RejectedInput("duplicate_entry", f"{relpath} is already listed at {seen[source]}")
        except RejectedInput as exc:
            yield CorpusReject(source=f"{manifest}:{line}", reason=exc.reason, detail=f"{origin}: {exc.detail}")
            continue
        seen[source] = origin
        yield CorpusItem(source=source, relpath=relpath, origin=origin, **fields)


def csv_rows(manifest: Path, required: Iterable[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """``(line number, row dict)`` of a CSV with a header, values stripped.

    Raises:
        ConfigError: naming the missing columns when the header lacks a required one.
    """
    reader = csv.DictReader(open_manifest(manifest))
    missing = set(required) - set(reader.fieldnames or ())
    if missing:
        raise ConfigError(
            f"{manifest}: missing column(s) {sorted(missing)}; header is {reader.fieldnames}"
        )
    for row in reader:
        yield reader.line_num, {k: (v or "").strip() for k, v in row.items() if k is not None}
