"""lhotse manifests: a RecordingSet with the SupervisionSet that carries its labels.

Layout (PATH is the folder, or one of the two manifests)::

    ROOT/<prefix>_recordings_<part>.jsonl.gz     one Recording per line (.jsonl also read)
    ROOT/<prefix>_supervisions_<part>.jsonl.gz   its SupervisionSegments (same name, ``supervisions``)

Every ``*recordings*.jsonl[.gz]`` at the top of ROOT is read with its supervisions manifest
(the name with ``recordings`` replaced by ``supervisions``), as lhotse writes them
(``RecordingSet.to_file``); lhotse itself is not needed. A recording is one clip: its one
``file`` source (a relative path is relative to ROOT; lhotse's own are usually absolute,
so pass ``--allow-outside-root``). The label is the supervisions' ``custom["label"]``
(``--label-column`` names another key; ``--bonafide-value`` as for ``hf-parquet``); every
supervision of a recording must agree. ``speaker`` and ``language`` come from the
supervisions (when they agree), ``split``, ``generator`` and ``family`` from ``custom``;
``gender``, ``text``, the recording id (``lhotse_recording_id``), its ``transforms`` and the
other ``custom`` keys (a nested ``custom["attributes"]`` dict merged in) go to
``clips.attributes``; ``custom["clip_id"]`` is ignored (the id is recomputed from the bytes).
Split, in this order: ``--split``, ``custom["split"]``, the manifest's ``<part>`` (the name
after ``recordings``: ``train-clean-100`` -> ``train``, the part kept as ``lhotse_part``).

Rejects: a line that is not JSON, a recording with no, several or non-file sources
(``bad_row``), no supervision or disagreeing labels (``bad_label``), a repeated recording
id (``duplicate_entry``), a supervision naming no recording of the set (``bad_row``, keyed
``supervisions manifest:line``), plus the usual ``missing`` / ``outside_root``.
:mod:`dfpipe.export` writes these manifests back (``dfpipe export --lhotse``).
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from dfpipe.config import LhotseConfig
from dfpipe.corpora._base import (
    CorpusEntry,
    CorpusReject,
    blank_to_none,
    decoded_line,
    manifest_entries,
    normalise_split,
)
from dfpipe.corpora._values import (
    exact_split,
    map_label,
    option_split,
    require_option,
    split_word,
    value_text,
)
from dfpipe.errors import ConfigError, RejectedInput

RECORDINGS, SUPERVISIONS = "recordings", "supervisions"
SUFFIXES = (".jsonl.gz", ".jsonl")
CUSTOM_FIELDS = ("split", "generator", "family")
"""``custom`` keys that fill the clip field of the same name."""
IGNORED_CUSTOM = ("clip_id", "attributes")
"""``custom`` keys not copied as attributes: the lake's own id, and the nested attributes."""


def parse_recording(
    recording: Any,
    supervisions: Sequence[dict[str, Any]],
    *,
    label_column: str = LhotseConfig.label_column,
    bonafide_value: str | None = LhotseConfig.bonafide_value,
) -> tuple[str, dict[str, Any]]:
    """``(path, CorpusItem fields)`` of one Recording and the supervisions of its id.

    Sample input: ``{"id": "u1", "sources": [{"type": "file", "channels": [0], "source":
    "wav/u1.wav"}], "sampling_rate": 16000, ...}`` with ``[{"recording_id": "u1", "speaker":
    "s1", "custom": {"label": "spoof", "generator": "espeak-ng"}}]`` -> ``("wav/u1.wav",
    {"label": "spoof", "generator": "espeak-ng", "speaker": "s1", ...})``.

    Raises:
        RejectedInput: ``bad_row``, ``bad_label`` or ``bad_split``.
    """
    if not isinstance(recording, dict) or not isinstance(recording.get("id"), str):
        raise RejectedInput("bad_row", "not a lhotse Recording (no string 'id')")
    rid = recording["id"]
    sources = recording.get("sources")
    if not isinstance(sources, list) or len(sources) != 1 or not isinstance(sources[0], dict):
        count = len(sources) if isinstance(sources, list) else 0
        raise RejectedInput("bad_row", f"recording {rid!r} has {count} audio sources; dfpipe ingests one file each")
    kind, path = sources[0].get("type"), sources[0].get("source")
    if kind == "url" and isinstance(path, str) and path.startswith("file://"):
        kind, path = "file", path.removeprefix("file://")
    if kind != "file" or not isinstance(path, str):
        raise RejectedInput("bad_row", f"recording {rid!r}: a {kind!r} source; dfpipe reads 'file' sources")
    if not supervisions:
        raise RejectedInput("bad_label", f"recording {rid!r} has no supervision to carry its label")
    ordered = sorted(supervisions, key=lambda s: (_number(s.get("start")), str(s.get("id"))))
    customs = [s.get("custom") if isinstance(s.get("custom"), dict) else {} for s in ordered]
    labels = set()
    for custom in customs:
        raw = custom.get(label_column)
        labels.add((map_label(raw, value_text(raw), bonafide_value), value_text(raw)))
    if len({label for label, _ in labels}) > 1:
        raise RejectedInput("bad_label", f"recording {rid!r}: its supervisions disagree on the label "
                                         f"({', '.join(sorted(str(text) for _, text in labels))})")
    merged: dict[str, Any] = {}
    for custom in customs:
        for key, value in custom.items():
            merged.setdefault(key, value)
    attributes: dict[str, str] = {"lhotse_recording_id": rid}
    nested = merged.get("attributes")
    if isinstance(nested, dict):
        attributes.update({str(k): t for k, v in nested.items() if (t := value_text(v))})
    for key, value in merged.items():
        if key not in (label_column, *CUSTOM_FIELDS, *IGNORED_CUSTOM) and (text := value_text(value)):
            attributes[key] = text
    if bonafide_value is not None and len(labels) == 1:
        attributes[label_column] = str(next(iter(labels))[1])
    for key in ("gender", "text"):
        if (text := _agreed(ordered, key, " " if key == "text" else None)) is not None:
            attributes[key] = text
    if recording.get("transforms"):
        attributes["lhotse_transforms"] = json.dumps(recording["transforms"], sort_keys=True)
    fields: dict[str, Any] = {
        "label": next(iter(labels))[0],
        "split": normalise_split(value_text(merged.get("split"))),
        "speaker": _agreed(ordered, "speaker"),
        "language": _agreed(ordered, "language"),
        "attributes": attributes,
    }
    for key in CUSTOM_FIELDS[1:]:
        fields[key] = blank_to_none(value_text(merged.get(key)))
    return path, fields


def manifest_pairs(path: str | os.PathLike[str]) -> list[tuple[Path, Path]]:
    """``(recordings, supervisions)`` manifests at ``path`` (a folder, or either manifest).

    Raises:
        ConfigError: no recordings manifest, or one without its supervisions manifest.
    """
    given = Path(os.path.abspath(path))
    if given.is_dir():
        found = sorted(p for p in given.iterdir() if p.is_file() and RECORDINGS in p.name and _is_jsonl(p))
        if not found:
            raise ConfigError(f"{given} holds no *{RECORDINGS}*.jsonl.gz: not a folder of lhotse manifests")
    elif given.is_file() and _is_jsonl(given) and (RECORDINGS in given.name or SUPERVISIONS in given.name):
        found = [given if RECORDINGS in given.name else given.with_name(_swap(given.name, SUPERVISIONS, RECORDINGS))]
    else:
        raise ConfigError(f"{given} is neither a folder of lhotse manifests nor a *{RECORDINGS}*.jsonl.gz file")
    pairs = []
    for recordings in found:
        supervisions = recordings.with_name(_swap(recordings.name, RECORDINGS, SUPERVISIONS))
        if not recordings.is_file():
            raise ConfigError(f"{recordings} not found: the RecordingSet of {given.name}")
        if not supervisions.is_file():
            raise ConfigError(f"{supervisions} not found: the SupervisionSet carrying the labels of {recordings.name}")
        pairs.append((recordings, supervisions))
    return pairs


def prepare_lhotse(
    path: str | os.PathLike[str],
    *,
    label_column: str = LhotseConfig.label_column,
    bonafide_value: str | None = LhotseConfig.bonafide_value,
    split: str | None = None,
    allow_outside_root: bool = False,
) -> Iterator[CorpusEntry]:
    """Items of lhotse RecordingSet + SupervisionSet manifests, in manifest order.

    Args:
        path: the folder of manifests, or one recordings (or supervisions) manifest.
        label_column: the supervisions' ``custom`` key holding the label.
        bonafide_value: the one label value meaning bona fide (others: spoof).
        split: the split of every recording (overrides ``custom`` and file names).
        allow_outside_root: accept source paths outside the manifests' folder.

    Raises:
        ConfigError: see :func:`manifest_pairs`; an empty ``--label-column``; a bad ``--split``.
    """
    require_option("--label-column", label_column)
    forced = option_split(split)
    for recordings, supervisions in manifest_pairs(path):
        yield from _pair_entries(recordings, supervisions, forced=forced, label_column=label_column,
                                 bonafide_value=bonafide_value, allow_outside_root=allow_outside_root)


def _pair_entries(recordings: Path, supervisions: Path, *, forced: str | None, label_column: str,
                  bonafide_value: str | None, allow_outside_root: bool) -> Iterator[CorpusEntry]:
    """Items of one recordings manifest, then rejects for supervisions of no recording."""
    part = _part(recordings.name)
    file_split = split_word(part) if part else None
    by_recording: dict[str, list[dict[str, Any]]] = {}
    first_line: dict[str, int] = {}
    for line, value, error in _jsonl(supervisions):
        rid = value.get("recording_id") if isinstance(value, dict) else None
        if error is not None or not isinstance(rid, str):
            yield CorpusReject(f"{supervisions}:{line}", "bad_row",
                               f"{supervisions.name}:{line}: {error or 'not a SupervisionSegment (no recording_id)'}")
            continue
        by_recording.setdefault(rid, []).append(value)
        first_line.setdefault(rid, line)
    seen: dict[str, int] = {}

    def rows() -> Iterator[tuple[int, tuple[int, Any, str | None]]]:
        for line, value, error in _jsonl(recordings):
            yield line, (line, value, error)

    def parse(row: tuple[int, Any, str | None]) -> tuple[str, dict[str, Any]]:
        line, value, error = row
        if error is not None:
            raise RejectedInput("bad_row", error)
        rid = value.get("id") if isinstance(value, dict) else None
        if isinstance(rid, str) and rid in seen:
            raise RejectedInput("duplicate_entry", f"recording id {rid!r} is already at line {seen[rid]}")
        sups = by_recording.pop(rid, []) if isinstance(rid, str) else []
        raw, fields = parse_recording(value, sups, label_column=label_column, bonafide_value=bonafide_value)
        seen[rid] = line
        fields["split"] = forced or fields["split"] or file_split
        if part and exact_split(part) is None:
            fields["attributes"] = {**fields["attributes"], "lhotse_part": part}
        return raw, fields

    yield from manifest_entries(recordings.parent, recordings, rows(), parse, allow_outside_root=allow_outside_root)
    for rid in by_recording:
        line = first_line[rid]
        yield CorpusReject(f"{supervisions}:{line}", "bad_row",
                           f"{supervisions.name}:{line}: a supervision of recording {rid!r}, which "
                           f"{recordings.name} does not hold")


# -- helpers --------------------------------------------------------------------------------
def _is_jsonl(path: Path) -> bool:
    return path.name.endswith(SUFFIXES)


def _swap(name: str, old: str, new: str) -> str:
    """``name`` with its last ``old`` replaced by ``new``."""
    head, _, tail = name.rpartition(old)
    return f"{head}{new}{tail}"


def _part(name: str) -> str:
    """The ``<part>`` of ``<prefix>_recordings_<part>.jsonl.gz`` (empty without one)."""
    stem = name.removesuffix(".gz").removesuffix(".jsonl")
    return stem.rpartition(RECORDINGS)[2].strip("_-.")


def _jsonl(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    """``(line, value, error)`` for each non-blank line (a line that is not UTF-8 or not JSON:
    its error); a read failure (a truncated gzip) ends with one error."""
    line = 0
    try:
        with open(path, "rb") as probe:
            compressed = probe.read(2) == b"\x1f\x8b"
        with (gzip.open(path, "rb") if compressed else open(path, "rb")) as handle:
            for line, data in enumerate(handle, 1):
                if not data.strip():
                    continue
                text = decoded_line(data)
                if isinstance(text, RejectedInput):
                    yield line, None, text.detail
                    continue
                try:
                    yield line, json.loads(text), None
                except json.JSONDecodeError as exc:
                    yield line, None, f"not JSON ({exc.msg})"
    except (OSError, EOFError) as exc:
        yield line + 1, None, f"the manifest cannot be read from this line on ({exc})"


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _agreed(supervisions: Sequence[dict[str, Any]], key: str, join: str | None = None) -> str | None:
    """The supervisions' ``key`` when they agree (``join``: all values joined, in start order)."""
    values = [text for s in supervisions if (text := blank_to_none(value_text(s.get(key))))]
    if join is not None:
        return join.join(values) or None
    return values[0] if values and len(set(values)) == 1 else None
