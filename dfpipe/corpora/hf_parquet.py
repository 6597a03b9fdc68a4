"""Hugging Face audio Parquet releases, and Parquet/CSV tables of ``path,label``.

Layouts (PATH may be the folder or one file)::

    ROOT/README.md                              dataset card, optional: its YAML front matter
                                                (``dataset_info.features``, ``configs[].data_files``)
    ROOT/data/<split>-00000-of-00002.parquet    rows with an ``Audio`` column (``datasets`` layout)
    ROOT/<config>/<split>/0000.parquet          the Hub's Parquet conversion (refs/convert/parquet)
    ROOT/<name>_<split>.parquet | FILE.csv      a table of ``path,label[,...]`` (DeepFense style),
                                                paths relative to the table's folder

Every ``*.parquet`` under ROOT is read (hidden folders such as ``.cache`` skipped), in path
order. The Parquet files are read as ``datasets`` writes them, with pyarrow alone
(``datasets`` is not needed): the ``Audio`` column is ``struct<bytes: binary, path: string>``,
``ClassLabel`` columns are int64, and the features JSON sits in the Arrow schema metadata
under ``huggingface`` (``{"info": {"features": {...}}}``), else in the card's
``dataset_info``. Files are read in batches of ``HFParquetConfig.batch_rows`` rows.

Rows with embedded audio become items whose source is the row itself
(:func:`dfpipe.parquet_source.row_uri`: file, ``audio.bytes``, row), hashed and probed like
a file; the release stays as it is. A row whose bytes are NULL but whose ``path`` names a
file (relative to the Parquet file's folder) is that file; a row with neither is a
``missing`` reject. A table without the audio column names files in its ``path`` column.

Labels: the ``--label-column`` (``label``); a ClassLabel's integer is replaced by its name.
Without ``--bonafide-value`` the value (or name) must be a spelling
:func:`dfpipe.corpora.normalise_label` knows (``bonafide``/``spoof``/``real``/``fake``...);
with it, rows equal to that value (the name or the integer, any case) are bona fide and
every other row is spoof, and the original value is kept in ``attributes``. Split, in this
order: ``--split``; a ``split`` column; the card's ``configs`` data_files; the file name
(the first ``-``/``_``-separated word that is a split: ``train-00000-of-00002``,
``CompSpoof_dev``) or a parent folder (``default/train/0000.parquet``). ``generator``,
``family``, ``speaker``, ``language`` columns fill those fields; every other column is kept
in ``attributes`` (ClassLabels by name, structs and lists as JSON, binary columns dropped),
with the ``Audio`` path as ``audio_path``.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from dfpipe.config import HFParquetConfig, ManifestConfig
from dfpipe.corpora._base import (
    CorpusEntry,
    CorpusItem,
    CorpusReject,
    blank_to_none,
    csv_rows,
    manifest_entries,
    normalise_split,
    resolve_member,
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
from dfpipe.parquet_source import row_uri

FIELDS = ("generator", "family", "speaker", "language")
"""Columns that fill the clip field of the same name (as in ``--format csv``)."""

# -- pure parsing ---------------------------------------------------------------------------
def parse_row(
    row: Mapping[str, Any],
    *,
    label_column: str = HFParquetConfig.label_column,
    bonafide_value: str | None = HFParquetConfig.bonafide_value,
    class_names: Mapping[str, Sequence[str]] | None = None,
    skip: Collection[str] = (),
) -> dict[str, Any]:
    """The :class:`CorpusItem` fields of one table row (everything but the audio).

    Sample input: ``{"label": 1, "speaker": "p225", "snr": 20.5, "split": "validation"}``
    with ``class_names={"label": ["bonafide", "spoof"]}`` -> ``{"label": "spoof",
    "split": "dev", "speaker": "p225", "attributes": {"snr": "20.5"}, ...}``.

    Args:
        row: column -> Python value, as pyarrow's ``to_pylist`` gives it (or CSV strings).
        label_column: the column holding the class.
        bonafide_value: the one value that means bona fide (every other value is spoof);
            ``None``: the value must spell the class out.
        class_names: ClassLabel names per column (integer -> name).
        skip: columns not to copy (the audio and path columns).

    Raises:
        RejectedInput: ``bad_label`` or ``bad_split``.
    """
    names = class_names or {}
    values = {k: value_text(v, names.get(k)) for k, v in row.items() if k not in skip}
    label_text = values.pop(label_column, None)
    fields: dict[str, Any] = {"label": map_label(row.get(label_column), label_text, bonafide_value)}
    if bonafide_value is not None and label_text is not None:
        values[label_column] = label_text  # the mapping to two classes is lossy: keep the value
    fields["split"] = normalise_split(values.pop("split", None))
    for name in FIELDS:
        fields[name] = blank_to_none(values.pop(name, None))
    fields["attributes"] = {k: v for k, v in values.items() if v}
    return fields


def split_of(relpath: str, patterns: Sequence[tuple[str, str, str]] = ()) -> tuple[str | None, dict[str, str]]:
    """The split of a data file from the card's data_files or its name, and attributes to keep.

    Sample input: ``data/validation-00000-of-00001.parquet`` -> ``("dev", {})``;
    ``default/holdout/0000.parquet`` -> ``(None, {})``; a card pattern
    ``("train_clean", "data/train_clean-*", "default")`` -> ``("train", {"hf_split":
    "train_clean"})``.
    """
    for split, pattern, _config in patterns:
        if fnmatch.fnmatch(relpath, pattern):
            found = split_word(split)
            return found, {} if found is not None and found == exact_split(split) else {"hf_split": split}
    parts = Path(relpath).parts
    for text in (Path(relpath).stem, *reversed(parts[:-1])):
        found = split_word(text)
        if found:
            return found, {}
    return None, {}


def card_of(root: Path) -> tuple[dict[str, dict[str, Any]], list[tuple[str, str, str]]]:
    """``(features, data_files patterns)`` from ``ROOT/README.md``'s YAML front matter.

    Features are returned in the shape of the Parquet metadata (``{"label": {"_type":
    "ClassLabel", "names": [...]}, "audio": {"_type": "Audio", ...}}``); patterns are
    ``(split, glob, config_name)``. A card without front matter, or one that does not parse,
    gives nothing (the Parquet files carry their own features).
    """
    readme = root / "README.md"
    if not readme.is_file():
        return {}, []
    match = re.match(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(\r?\n|\Z)", readme.read_text("utf-8", "replace"), re.DOTALL)
    try:
        meta = yaml.safe_load(match.group(1)) if match else None
    except yaml.YAMLError:
        meta = None
    if not isinstance(meta, dict):
        return {}, []
    features: dict[str, dict[str, Any]] = {}
    infos = meta.get("dataset_info")
    for info in infos if isinstance(infos, list) else [infos]:
        listed = info.get("features") if isinstance(info, dict) else None
        for feature in listed if isinstance(listed, list) else []:
            if isinstance(feature, dict) and isinstance(feature.get("name"), str):
                features.setdefault(feature["name"], _card_feature(feature.get("dtype")))
    patterns: list[tuple[str, str, str]] = []
    for config in meta.get("configs") or []:
        if not isinstance(config, dict):
            continue
        data_files = config.get("data_files")
        for entry in data_files if isinstance(data_files, list) else []:
            if isinstance(entry, dict) and isinstance(entry.get("split"), str):
                globs = entry.get("path")
                for glob in [globs] if isinstance(globs, str) else globs or []:
                    patterns.append((entry["split"], str(glob), str(config.get("config_name", "default"))))
    return features, patterns


# -- the adapter ----------------------------------------------------------------------------
def prepare_hf_parquet(
    path: str | os.PathLike[str],
    *,
    audio_column: str = HFParquetConfig.audio_column,
    path_column: str = HFParquetConfig.path_column,
    label_column: str = HFParquetConfig.label_column,
    bonafide_value: str | None = HFParquetConfig.bonafide_value,
    split: str | None = None,
    encoding: str | None = ManifestConfig.encoding,
    allow_outside_root: bool = False,
) -> Iterator[CorpusEntry]:
    """Items of an HF audio Parquet release (or of Parquet/CSV ``path,label`` tables).

    Args:
        path: the dataset folder, one Parquet file, or one CSV table.
        audio_column: the Audio column (when absent, the one column the features declare
            ``Audio``); its bytes are the clip.
        path_column: for tables without the audio column: the column naming files.
        label_column, bonafide_value: see :func:`parse_row`.
        split: the split of every row (overrides columns and file names).
        encoding: a CSV table's text encoding (``None``: detected, see :class:`ManifestConfig`).
        allow_outside_root: accept ``path`` values outside the table's folder.

    Raises:
        ConfigError: an option that is empty or names no column (one line naming the
            option and the file's columns), a bad ``split``, or PATH without Parquet files.
    """
    options = HFParquetConfig(audio_column=require_option("--audio-column", audio_column),
                              path_column=require_option("--path-column", path_column),
                              label_column=require_option("--label-column", label_column),
                              bonafide_value=bonafide_value)
    forced = option_split(split)
    given = Path(os.path.abspath(path))
    if given.is_file():
        root, files = given.parent, [given]
    elif given.is_dir():
        root, files = given, _parquet_files(given)
        if not files:
            raise ConfigError(f"{given} holds no *.parquet files: not a Hugging Face Parquet release")
    else:
        raise ConfigError(f"{given} does not exist")
    card_features, patterns = card_of(root)
    for file in files:
        relpath = Path(os.path.relpath(file, root)).as_posix()
        file_split, extra = split_of(relpath, patterns)
        reader = _Table(file, relpath, options, forced, file_split, extra, card_features, allow_outside_root,
                        encoding)
        if file.suffix.lower() == ".csv":
            yield from reader.csv_entries()
        else:
            yield from reader.parquet_entries()


class _Table:
    """One data file of the release: its columns, label mapping and split."""

    def __init__(self, file: Path, relpath: str, options: HFParquetConfig, forced_split: str | None,
                 file_split: str | None, extra: dict[str, str], card_features: dict[str, dict[str, Any]],
                 allow_outside_root: bool, encoding: str | None) -> None:
        self.file, self.relpath, self.options = file, relpath, options
        self.forced_split, self.file_split, self.extra = forced_split, file_split, extra
        self.card_features, self.allow_outside_root = card_features, allow_outside_root
        self.encoding = encoding

    def _fields(self, row: Mapping[str, Any], class_names: Mapping[str, Sequence[str]],
                skip: Collection[str]) -> dict[str, Any]:
        """parse_row, then the split: --split, else the row's, else the file's."""
        skip = {*skip, "split"} if self.forced_split is not None else skip
        fields = parse_row(row, label_column=self.options.label_column,
                           bonafide_value=self.options.bonafide_value, class_names=class_names, skip=skip)
        fields["split"] = self.forced_split or fields["split"] or self.file_split
        fields["attributes"] = {**self.extra, **fields["attributes"]}
        return fields

    def _require(self, columns: Collection[str], option: str, name: str) -> None:
        if name not in columns:
            raise ConfigError(f"{self.file}: no column {name!r} ({option}); columns are {sorted(columns)}")

    def csv_entries(self) -> Iterator[CorpusEntry]:
        """Items of a CSV ``path,label`` table (1-based line numbers, as ``--format csv``)."""
        rows = csv_rows(self.file, (self.options.path_column, self.options.label_column), self.encoding)
        skip = {self.options.path_column}

        def parse(row: dict[str, str]) -> tuple[str, dict[str, Any]]:
            return row[self.options.path_column], self._fields(row, {}, skip)

        yield from manifest_entries(self.file.parent, self.file, rows, parse,
                                    allow_outside_root=self.allow_outside_root)

    def parquet_entries(self) -> Iterator[CorpusEntry]:
        """Items of one Parquet file: embedded rows, or a table naming files."""
        try:
            parquet = pq.ParquetFile(self.file, buffer_size=1 << 20, pre_buffer=False)
            schema = parquet.schema_arrow
        except (OSError, pa.ArrowException) as exc:
            yield CorpusReject(str(self.file), "unreadable", f"{self.relpath}: not a readable Parquet file ({exc})")
            return
        except UnicodeEncodeError:  # pyarrow opens files by UTF-8 name only
            yield CorpusReject(str(self.file), "unreadable", f"{self.relpath}: pyarrow cannot open a file whose "
                               "name is not UTF-8; rename it")
            return
        features = _file_features(schema) or self.card_features
        class_names = {name: list(f["names"]) for name, f in features.items()
                       if f.get("_type") == "ClassLabel" and isinstance(f.get("names"), list)}
        audio = self._audio_column(schema, features)
        if audio is None:
            self._require(schema.names, "--path-column", self.options.path_column)
        self._require(schema.names, "--label-column", self.options.label_column)
        if audio is None:
            yield from self._path_rows(parquet, class_names)
        else:
            yield from self._embedded_rows(parquet, audio, class_names)

    def _audio_column(self, schema: pa.Schema, features: Mapping[str, Mapping[str, Any]]) -> str | None:
        name = self.options.audio_column
        if schema.get_field_index(name) < 0:
            declared = [n for n, f in features.items() if f.get("_type") == "Audio" and schema.get_field_index(n) >= 0]
            if len(declared) != 1:
                return None
            name = declared[0]
        kind = schema.field(name).type
        if pa.types.is_struct(kind) and kind.get_field_index("bytes") >= 0:
            return name
        if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
            return name
        raise ConfigError(f"{self.file}: column {name!r} (--audio-column) is {kind}, neither an Audio struct "
                          "(bytes, path) nor binary")

    def _batches(self, parquet: pq.ParquetFile, columns: list[str]) -> Iterator[tuple[int, pa.RecordBatch]]:
        start = 0
        for batch in parquet.iter_batches(batch_size=self.options.batch_rows, columns=columns):
            yield start, batch
            start += batch.num_rows

    def _path_rows(self, parquet: pq.ParquetFile, class_names: Mapping[str, Sequence[str]]) -> Iterator[CorpusEntry]:
        skip = {self.options.path_column}

        def rows() -> Iterator[tuple[int, dict[str, Any]]]:
            for start, batch in self._batches(parquet, parquet.schema_arrow.names):
                for offset, row in enumerate(batch.to_pylist()):
                    yield start + offset, row

        def parse(row: dict[str, Any]) -> tuple[str, dict[str, Any]]:
            raw = row.get(self.options.path_column)
            if not isinstance(raw, str):
                raise RejectedInput("missing", f"{self.options.path_column} is {raw!r}, not a file path")
            return raw, self._fields(row, class_names, skip)

        try:
            yield from manifest_entries(self.file.parent, self.file, rows(), parse,
                                        allow_outside_root=self.allow_outside_root)
        except (OSError, pa.ArrowException) as exc:
            yield CorpusReject(str(self.file), "unreadable", f"{self.relpath}: reading stopped ({exc})")

    def _embedded_rows(self, parquet: pq.ParquetFile, audio: str,
                       class_names: Mapping[str, Sequence[str]]) -> Iterator[CorpusEntry]:
        schema = parquet.schema_arrow
        kind = schema.field(audio).type
        is_struct = pa.types.is_struct(kind)
        has_path = is_struct and kind.get_field_index("path") >= 0
        value_column = f"{audio}.bytes" if is_struct else audio
        columns = [n for n in schema.names if n != audio]
        columns += [value_column, f"{audio}.path"] if has_path else [value_column]
        rows = parquet.metadata.num_rows
        try:
            for start, batch in self._batches(parquet, columns):
                column = batch.column(audio)
                data = pc.struct_field(column, "bytes") if is_struct else column
                sizes = pc.binary_length(data).to_pylist()
                paths = pc.struct_field(column, "path").to_pylist() if has_path else [None] * batch.num_rows
                others = batch.drop_columns([audio]).to_pylist()
                for offset, (size, audio_path, row) in enumerate(zip(sizes, paths, others, strict=True)):
                    yield self._embedded_entry(start + offset, rows, value_column, size, audio_path, row,
                                               class_names)
        except (OSError, pa.ArrowException) as exc:
            yield CorpusReject(str(self.file), "unreadable", f"{self.relpath}: reading stopped ({exc})")

    def _embedded_entry(self, row_number: int, rows: int, value_column: str, size: int | None,
                        audio_path: str | None, row: dict[str, Any],
                        class_names: Mapping[str, Sequence[str]]) -> CorpusEntry:
        uri = row_uri(self.file, value_column, row_number, rows=rows)
        origin = f"{self.relpath}:{row_number}"
        try:
            fields = self._fields(row, class_names, ())
            if audio_path:
                fields["attributes"] = {**fields["attributes"], "audio_path": audio_path}
            if size is not None:
                return CorpusItem(source=uri, relpath=origin, origin=origin, size_bytes=size, **fields)
            if not audio_path:
                raise RejectedInput("missing", f"the row has no audio ({value_column} and its path are NULL)")
            source, relpath = resolve_member(self.file.parent, audio_path, allow_outside_root=self.allow_outside_root)
        except RejectedInput as exc:
            return CorpusReject(source=uri, reason=exc.reason, detail=f"{origin}: {exc.detail}")
        return CorpusItem(source=source, relpath=relpath, origin=origin, **fields)


# -- helpers --------------------------------------------------------------------------------
def _parquet_files(root: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(Path(dirpath) / n for n in filenames if n.lower().endswith(".parquet"))
    return sorted(found, key=lambda p: Path(os.path.relpath(p, root)).as_posix())


def _file_features(schema: pa.Schema) -> dict[str, dict[str, Any]]:
    raw = (schema.metadata or {}).get(b"huggingface")
    try:
        features = json.loads(raw)["info"]["features"] if raw else {}
    except (ValueError, KeyError, TypeError):
        return {}
    return {k: v for k, v in features.items() if isinstance(v, dict)} if isinstance(features, dict) else {}


def _card_feature(dtype: Any) -> dict[str, Any]:
    """A card's ``dtype`` (``{"class_label": {"names": {"0": "a"}}}``) in the metadata's shape."""
    if isinstance(dtype, dict) and isinstance(dtype.get("class_label"), dict):
        names = dtype["class_label"].get("names")
        if isinstance(names, dict):
            names = [names[k] for k in sorted(names, key=lambda k: int(k))]
        return {"_type": "ClassLabel", "names": [str(n) for n in names or []]}
    if isinstance(dtype, dict) and "audio" in dtype:
        return {"_type": "Audio"}
    return {"_type": "Value", "dtype": dtype}
