"""What every corpus adapter shares: the item it yields, label/split rules, safe paths.

Adapters never drop an input silently: a row or file they cannot turn into a
:class:`CorpusItem` becomes a :class:`CorpusReject` (reason + detail) that ingest writes to
the ``rejects`` table.

File names are bytes: one that is not valid UTF-8 (an old archive's latin-1 ``é``) is kept
exactly, its ``source`` a ``file://`` URI of its bytes (:func:`dfpipe.stage_kit.as_source_uri`)
and its ``relpath`` shown escaped (:func:`dfpipe.stage_kit.printable`). Text manifests are
decoded by :func:`manifest_text` (byte-order mark, else UTF-8, or the ``encoding`` option).
"""

from __future__ import annotations

import codecs
import csv
import io
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dfpipe.config import SPLITS
from dfpipe.errors import ConfigError, RejectedInput
from dfpipe.stage_kit import CONTROL_CHARACTERS, as_source_uri, printable

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
        source: absolute path of the file (symlinks not resolved: the path the corpus names),
            as a lake string (:func:`dfpipe.stage_kit.as_source_uri`: a ``file://`` URI when
            the name is not UTF-8); the clip's ``source_uri``.
        relpath: path relative to the corpus root, ``/``-separated, shown escaped
            (:func:`dfpipe.stage_kit.printable`).
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

    def __post_init__(self) -> None:
        # the one place a name from disk becomes lake strings, whichever adapter made it
        object.__setattr__(self, "source", as_source_uri(self.source))
        object.__setattr__(self, "relpath", printable(self.relpath))
        object.__setattr__(self, "origin", printable(self.origin))


@dataclass(frozen=True)
class CorpusReject:
    """An input the adapter could not use: ``source`` is the file or manifest row (a lake
    string, as :attr:`CorpusItem.source`), ``detail`` shown escaped."""

    source: str
    reason: str
    detail: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "source", as_source_uri(self.source))
        object.__setattr__(self, "detail", printable(self.detail))


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
        RejectedInput: ``control_character`` (a NUL, newline, escape... in the path),
            ``bad_path`` (a string no file name can be, e.g. JSON's lone ``\\ud800``),
            ``outside_root`` (escapes the root) or ``missing`` (no such path).
    """
    if CONTROL_CHARACTERS.search(raw):
        raise RejectedInput("control_character", f"the path '{printable(raw)}' holds a control character")
    try:
        os.fsencode(raw)
    except UnicodeEncodeError:
        raise RejectedInput("bad_path", f"'{printable(raw)}' cannot be a file name (a lone surrogate)") from None
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
    folders whose name has an audio suffix (ingest rejects them as ``not_a_file``, and the
    walk goes on into them: ``x.wav/take1.wav`` is listed), so no input vanishes from the walk.
    """
    for dirpath, dirnames, filenames in os.walk(top):
        here = Path(dirpath)
        keep = []
        for name in sorted(dirnames):
            sub = here / name
            if sub.is_symlink() or sub.suffix.lower() in AUDIO_SUFFIXES:
                yield sub
            if not sub.is_symlink():
                keep.append(name)
        dirnames[:] = keep
        for name in sorted(filenames):
            yield here / name


_BYTE_ORDER_MARKS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                     (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                     (codecs.BOM_UTF16_BE, "utf-16"))  # UTF-32 LE first: its mark starts like UTF-16 LE's


def manifest_text(path: Path, encoding: str | None = None) -> str:
    """The text of a manifest: in ``encoding`` when given (``--encoding``), else in the one its
    byte-order mark names (UTF-8, UTF-16, UTF-32), else UTF-8. The mark is dropped.

    Bytes that do not decode stop the run with one line naming the file, the line, the byte
    offset and, for a file read as UTF-8, an encoding that reads it (``cp1252`` for a
    spreadsheet's export, else ``latin-1``): a wrong encoding is the whole file's, and rows
    rejected for it would stay rejected on the re-run with the right one.

    Raises:
        ConfigError: an unknown ``encoding``, or bytes that are not text in it.
    """
    data = path.read_bytes()
    chosen = encoding or next((name for mark, name in _BYTE_ORDER_MARKS if data.startswith(mark)), "utf-8")
    try:
        return data.decode(chosen).removeprefix("\ufeff")
    except LookupError:
        raise ConfigError(f"--encoding {encoding!r} is not a text encoding Python knows "
                          "(e.g. utf-8, cp1252, latin-1, utf-16)") from None
    except UnicodeDecodeError as exc:
        line = data[: exc.start].decode(chosen, "replace").count("\n") + 1
        hint = "the file is damaged, or not in that encoding"
        if encoding is None and chosen == "utf-8":
            guess = "cp1252" if _decodes(data, "cp1252") else "latin-1"
            hint = f"it reads as {guess}: pass --encoding {guess}, or save it as UTF-8"
        raise ConfigError(f"{printable(str(path))}: line {line}, byte offset {exc.start}: {data[exc.start:exc.end]!r} is not "
                          f"{chosen}; {hint}") from None


def decoded_line(line: bytes) -> str | RejectedInput:
    """One line of a line-per-record protocol (ASVspoof, JSON lines), UTF-8 as those formats
    are (a byte-order mark dropped); a line that does not decode is that line's ``bad_row``
    (a damaged record, the others still read), handed back for :func:`manifest_entries`."""
    try:
        return line.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return RejectedInput("bad_row", f"byte {line[exc.start]:#04x} at byte offset {exc.start} of the line is "
                                        "not UTF-8")


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        data.decode(encoding)
    except UnicodeDecodeError:
        return False
    return True


def open_manifest(path: Path, encoding: str | None = None) -> Iterator[str]:
    """Lines of a text manifest (:func:`manifest_text`), with newlines kept for ``csv``."""
    return io.StringIO(manifest_text(path, encoding), newline="")


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

    A row that fails to parse (or that the reader could not read: it hands a
    :class:`RejectedInput` instead of the row), holds a NUL or text no file can hold, names a
    missing file or a path outside ``root``, or names a file an earlier row already named
    becomes a :class:`CorpusReject` whose ``source`` is ``<manifest>:<line>``.

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
            if isinstance(row, RejectedInput):
                raise row
            raw, fields = parse(row)
            check_text(fields)
            source, relpath = resolve_member(root, raw, allow_outside_root=allow_outside_root)
            if source in seen:
                raise RejectedInput("duplicate_entry", f"{relpath} is already listed at {seen[source]}")
        except RejectedInput as exc:
            yield CorpusReject(source=f"{manifest}:{line}", reason=exc.reason, detail=f"{origin}: {exc.detail}")
            continue
        seen[source] = origin
        yield CorpusItem(source=source, relpath=relpath, origin=origin, **fields)


def check_text(fields: Mapping[str, Any]) -> None:
    """Refuse CorpusItem fields holding a NUL or a lone surrogate (JSON's ``"\\ud800"``),
    which no Arrow string may hold.

    Raises:
        RejectedInput: ``control_character`` (a NUL) or ``bad_row`` (a lone surrogate).
    """
    for name, value in fields.items():
        for key, text in value.items() if isinstance(value, Mapping) else [(name, value)]:
            if not isinstance(text, str):
                continue
            if "\x00" in text:
                raise RejectedInput("control_character", f"a NUL byte in {printable(str(key))}")
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise RejectedInput("bad_row", f"{printable(str(key))} holds {printable(text)!r}, not text"
                                    ) from None


def csv_rows(manifest: Path, required: Iterable[str], encoding: str | None = None
             ) -> Iterator[tuple[int, dict[str, str] | RejectedInput]]:
    """``(line number, row dict)`` of a CSV with a header, values stripped (quoting, CRLF and
    quoted newlines as the ``csv`` module reads them; the text from :func:`manifest_text`).

    A row with fewer values than the header or with more non-empty ones, or one the ``csv``
    module refuses (a field over its size limit), comes as a ``bad_row`` :class:`RejectedInput`
    instead.

    Raises:
        ConfigError: naming the missing columns when the header lacks a required one; see
            :func:`manifest_text`.
    """
    reader = csv.DictReader(open_manifest(manifest, encoding))
    try:
        header = reader.fieldnames or []
    except csv.Error as exc:
        raise ConfigError(f"{manifest}: line 1: the header is not CSV ({exc})") from None
    missing = set(required) - set(header)
    if missing:
        hint = " (NUL bytes: UTF-16 without a byte-order mark? pass --encoding utf-16-le)" if "\x00" in "".join(
            header) else ""
        raise ConfigError(f"{printable(str(manifest))}: missing column(s) {sorted(missing)}; header is {header}{hint}")
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # DictReader.line_num is only set after a good row
            yield reader.reader.line_num, RejectedInput("bad_row", f"not a CSV row ({exc})")
            continue
        extra = [v for v in row.pop(None, None) or () if v.strip()]  # trailing empty cells are harmless
        absent = sum(v is None for v in row.values())
        if extra or absent:
            yield reader.line_num, RejectedInput(
                "bad_row", f"{len(extra)} value(s) past the header's {len(header)} columns" if extra
                else f"{absent} of the header's {len(header)} columns missing")
            continue
        yield reader.line_num, {k: v.strip() for k, v in row.items()}
