"""Deepfake-Eval-2024 (Chandra et al., 2025): in-the-wild deepfakes collected in 2024.

Layout::

    ROOT/audio-metadata-publish.csv    one row per file
    ROOT/**/<Filename>                 mp3, wav, m4a, ... next to the CSV or in a subfolder

Columns used: ``Filename``, ``Ground Truth`` (``Real``/``Fake``, any case) and
``Finetuning Set`` (``Train``/``Test`` -> split ``train``/``test``); the header is matched
case-insensitively, and every other column (language, source, duration...) is kept in
``clips.attributes`` under its original name (``Language`` also fills ``clips.language``).
A ``Filename`` not found at ``ROOT/<Filename>`` is looked up by name anywhere under ROOT; when
that name is at several places, the row is rejected (``ambiguous_name``, naming each place)
and the other rows go on.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dfpipe.config import ManifestConfig
from dfpipe.corpora._base import (
    CorpusEntry,
    blank_to_none,
    csv_rows,
    find_manifest,
    manifest_entries,
    normalise_label,
    normalise_split,
    open_manifest,
)
from dfpipe.errors import ConfigError, RejectedInput

MANIFEST = "audio-metadata-publish.csv"
FILENAME, LABEL, SPLIT, LANGUAGE = "filename", "ground truth", "finetuning set", "language"


def parse_row(row: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """``(Filename, CorpusItem fields)`` of one CSV row; column names match in any case.

    Sample input line: ``a1b2c3.mp3,Fake,Test,English`` under the header
    ``Filename,Ground Truth,Finetuning Set,Language``.

    Raises:
        RejectedInput: ``bad_label`` or ``bad_split``.
    """
    column = {name.strip().lower(): name for name in row}

    def get(key: str) -> str | None:
        return row[column[key]] if key in column else None

    used = {column.get(FILENAME), column.get(LABEL), column.get(SPLIT)}
    return get(FILENAME) or "", {
        "label": normalise_label(get(LABEL) or ""),
        "split": normalise_split(get(SPLIT)),
        "language": blank_to_none(get(LANGUAGE)),
        "attributes": {k: v for k, v in row.items() if k not in used and v},
    }


def prepare_deepfake_eval_2024(
    path: str | os.PathLike[str], *, encoding: str | None = ManifestConfig.encoding, allow_outside_root: bool = False
) -> Iterator[CorpusEntry]:
    """Items of Deepfake-Eval-2024, in CSV order.

    Args:
        path: the corpus folder (or the CSV itself).
        encoding: the CSV's text encoding (``None``: detected, see :class:`ManifestConfig`).
        allow_outside_root: accept ``Filename`` values outside the folder.

    Raises:
        ConfigError: no CSV, a header lacking a used column, or text that does not decode.
    """
    root, manifest = find_manifest(path, MANIFEST)
    by_name: dict[str, list[str]] | None = None

    def locate(name: str) -> str:
        nonlocal by_name
        if not name or (root / name).exists() or Path(name).is_absolute() or ".." in Path(name).parts:
            return name  # resolve_member reports missing / outside-root as they are
        if by_name is None:
            by_name = _index_by_name(root)
        places = by_name.get(Path(name).name, [name])
        if len(places) > 1:
            raise RejectedInput("ambiguous_name", f"{name} is at {', '.join(places)} under {root}")
        return places[0]

    def parse(row: dict[str, str]) -> tuple[str, dict[str, Any]]:
        raw, fields = parse_row(row)
        return locate(raw), fields

    header = {name.strip().lower(): name for name in _header(manifest, encoding)}
    missing = {FILENAME, LABEL} - set(header)
    if missing:
        raise ConfigError(f"{manifest}: missing column(s) {sorted(missing)}; header is {sorted(header.values())}")
    yield from manifest_entries(root, manifest, csv_rows(manifest, (), encoding), parse,
                                allow_outside_root=allow_outside_root)


def _header(manifest: Path, encoding: str | None) -> list[str]:
    return next(csv.reader(open_manifest(manifest, encoding)), [])


def _index_by_name(root: Path) -> dict[str, list[str]]:
    """``{file name: [relpath, ...]}`` of every file under ``root``, relpaths in walk order."""
    index: dict[str, list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            index.setdefault(name, []).append(Path(os.path.relpath(Path(dirpath) / name, root)).as_posix())
    return index
