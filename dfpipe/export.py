"""Export: the lake's clips as manifests other toolkits read (``dfpipe export``).

lhotse (:func:`export_lhotse`): for each corpus and split, a RecordingSet and a
SupervisionSet, as lhotse's ``RecordingSet.to_file`` writes them::

    OUT/<corpus>_recordings_<split>.jsonl.gz      (clips without a split: <corpus>_recordings.jsonl.gz)
    OUT/<corpus>_supervisions_<split>.jsonl.gz
    OUT/audio/<corpus>/<clip_id>.<ext>            only for clips stored inside Parquet rows

One recording per clip (id: the ``lhotse_recording_id`` the clip was ingested with, else the
``clip_id``), with one ``file`` source covering its channels; one supervision per
recording over its whole duration, carrying ``speaker``, ``language``, ``gender`` and
``text`` (from ``attributes``) and ``custom = {"label", "clip_id", "split", "generator",
"family", "attributes": {...}}``. lhotse cannot read a Parquet row, so a clip ingested from
a Hugging Face release is written out as a file under ``OUT/audio/`` (once; a re-export
keeps it). Every manifest is written atomically (:func:`dfpipe.lake.atomic_write`), gzip
without a timestamp, so the same lake exports byte-identical files.
:mod:`dfpipe.corpora.lhotse_manifest` reads them back (``dfpipe ingest --format lhotse``).
"""

from __future__ import annotations

import gzip
import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dfpipe.config import LhotseConfig
from dfpipe.errors import ConfigError, RejectedInput
from dfpipe.lake import Lake, atomic_write, check_name
from dfpipe.parquet_source import is_row_uri
from dfpipe.stage_kit import local_path, read_source

DEFAULT_CONFIG = LhotseConfig()
_SUFFIX_BY_FORMAT = {"wav": ".wav", "flac": ".flac", "mp3": ".mp3", "ogg": ".ogg", "mov,mp4,m4a,3gp,3g2,mj2": ".m4a",
                     "matroska,webm": ".webm", "aac": ".aac", "aiff": ".aiff", "au": ".au", "amr": ".amr"}
_SUPERVISION_FIELDS = ("gender", "text")
"""Attributes that lhotse holds as supervision fields (ingest puts them back in attributes)."""
_RECORDING_ID = "lhotse_recording_id"
_TRANSFORMS = "lhotse_transforms"


@dataclass(frozen=True)
class LhotseExportSummary:
    """What one :func:`export_lhotse` call wrote."""

    out_dir: str
    recordings: int
    manifests: tuple[str, ...]
    audio_files: int
    """Clips stored inside Parquet rows written out as files under ``OUT/audio/``."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Clips left out by reason (an embedded clip whose row can no longer be read)."""


def export_lhotse(lake_uri: str, out_dir: str | os.PathLike[str], corpora: Sequence[str] | None = None,
                  config: LhotseConfig = DEFAULT_CONFIG) -> LhotseExportSummary:
    """Write the clips of ``corpora`` (default: every corpus of the lake) as lhotse manifests.

    Args:
        lake_uri: the lake root.
        out_dir: a local folder (created).
        corpora: corpus names; ``None`` or empty: all.
        config: the ``custom`` key of the label (as ``dfpipe ingest --format lhotse`` reads).

    Raises:
        ConfigError: a named corpus with no clips, or a lake without clips.
    """
    lake = Lake(lake_uri)
    known = sorted(set(lake.read("clips", columns=["corpus"]).column("corpus").to_pylist()))
    wanted = list(dict.fromkeys(corpora or known))
    for corpus in wanted:
        check_name("corpus", corpus)
        if corpus not in known:
            raise ConfigError(f"corpus {corpus!r} has no clips in {lake.uri} (corpora: {', '.join(known) or 'none'})")
    out = Path(os.path.abspath(out_dir))
    out.mkdir(parents=True, exist_ok=True)
    manifests: list[str] = []
    skipped: Counter[str] = Counter()
    recordings = audio_files = 0
    for corpus in wanted:
        clips = _unique(lake.read("clips", partition={"corpus": corpus}).to_pylist())
        ids = _recording_ids(clips)
        by_split: dict[str | None, list[tuple[dict[str, Any], dict[str, Any]]]] = defaultdict(list)
        for clip in sorted(clips, key=lambda c: (c["split"] is None, c["split"] or "", c["source_relpath"],
                                                 c["clip_id"])):
            try:
                source, written = _source(clip, out / config.audio_folder / corpus)
            except RejectedInput as exc:
                skipped[exc.reason] += 1
                continue
            audio_files += written
            rid = ids[clip["clip_id"]]
            by_split[clip["split"]].append((recording_of(clip, rid, source),
                                            supervision_of(clip, rid, label_key=config.label_column)))
        for split, pairs in by_split.items():
            tail = f"_{split}" if split else ""
            for kind, index in (("recordings", 0), ("supervisions", 1)):
                final = out / f"{corpus}_{kind}{tail}.jsonl.gz"
                _write_jsonl_gz(final, [pair[index] for pair in pairs])
                manifests.append(str(final))
            recordings += len(pairs)
    return LhotseExportSummary(str(out), recordings, tuple(manifests), audio_files, dict(sorted(skipped.items())))


def recording_of(clip: Mapping[str, Any], recording_id: str, source: str) -> dict[str, Any]:
    """The lhotse Recording (as ``Recording.to_dict`` writes it) of one ``clips`` row."""
    channels = list(range(int(clip["channels"])))
    rate = int(clip["sample_rate"])
    samples = round(float(clip["duration_s"]) * rate)
    kind = "file" if "://" not in source or source.startswith("file://") else "url"
    recording: dict[str, Any] = {
        "id": recording_id,
        "sources": [{"type": kind, "channels": channels, "source": local_path(source)}],  # JSON keeps any name
        "sampling_rate": rate, "num_samples": samples, "duration": samples / rate, "channel_ids": channels,
    }
    transforms = dict(clip.get("attributes") or {}).get(_TRANSFORMS)
    if transforms:
        recording["transforms"] = json.loads(transforms)
    return recording


def supervision_of(clip: Mapping[str, Any], recording_id: str, *,
                   label_key: str = DEFAULT_CONFIG.label_column) -> dict[str, Any]:
    """The lhotse SupervisionSegment (whole recording) carrying one clip's label and metadata."""
    attributes = dict(clip.get("attributes") or {})
    if attributes.get(_RECORDING_ID) == recording_id:
        del attributes[_RECORDING_ID]
    attributes.pop(_TRANSFORMS, None)
    channels = int(clip["channels"])
    rate = int(clip["sample_rate"])
    supervision: dict[str, Any] = {
        "id": recording_id, "recording_id": recording_id, "start": 0.0,
        "duration": round(float(clip["duration_s"]) * rate) / rate,
        "channel": 0 if channels == 1 else list(range(channels)),
    }
    for key in ("text", "language", "speaker", "gender"):  # lhotse's field order
        value = attributes.pop(key, None) if key in _SUPERVISION_FIELDS else clip.get(key)
        if value is not None:
            supervision[key] = value
    custom: dict[str, Any] = {label_key: clip["label"], "clip_id": clip["clip_id"]}
    custom.update({key: clip[key] for key in ("split", "generator", "family") if clip.get(key) is not None})
    if attributes:
        custom["attributes"] = dict(sorted(attributes.items()))
    supervision["custom"] = custom
    return supervision


# -- helpers --------------------------------------------------------------------------------
def _unique(clips: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per clip_id (the first), attributes as a dict."""
    seen: dict[str, dict[str, Any]] = {}
    for clip in clips:
        clip["attributes"] = dict(clip.get("attributes") or [])
        seen.setdefault(clip["clip_id"], clip)
    return list(seen.values())


def _recording_ids(clips: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """``{clip_id: recording id}``: the lhotse id a clip came with when no other clip has it."""
    wanted = {c["clip_id"]: c["attributes"].get(_RECORDING_ID) or c["clip_id"] for c in clips}
    counts = Counter(wanted.values())
    return {cid: rid if counts[rid] == 1 else cid for cid, rid in wanted.items()}


def _source(clip: Mapping[str, Any], audio_dir: Path) -> tuple[str, int]:
    """``(path lhotse reads, 1 if it was written now else 0)`` of a clip's audio."""
    uri = clip["source_uri"]
    if not is_row_uri(uri):
        return uri, 0
    original = Path(clip["attributes"].get("audio_path") or "")
    suffix = original.suffix.lower() or _SUFFIX_BY_FORMAT.get(clip["source_format"], f".{clip['source_codec']}")
    final = audio_dir / f"{clip['clip_id']}{suffix}"
    if final.is_file() and final.stat().st_size == clip["size_bytes"]:
        return str(final), 0
    data = read_source(uri)
    audio_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(str(final), lambda tmp: Path(tmp).write_bytes(data))
    return str(final), 1


def _write_jsonl_gz(final: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as handle:
            for row in rows:
                # a name that is not UTF-8 holds surrogates: backslashreplace writes each as the
                # JSON escape \udcXX, which reads back as the same name
                handle.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8", "backslashreplace"))

    atomic_write(str(final), write)
