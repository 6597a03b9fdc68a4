"""Parquet files written the way Hugging Face ``datasets`` writes an audio release.

``datasets`` (``push_to_hub`` / ``to_parquet``) stores each ``Audio`` value as
``struct<bytes: binary, path: string>``, each ``ClassLabel`` as int64, and the features as
JSON in the Arrow schema metadata under ``huggingface``; audio releases get 100 rows per row
group. These helpers build such files with pyarrow alone (the tests do not need ``datasets``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

AUDIO = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])

FEATURES: dict[str, Any] = {
    "audio": {"sampling_rate": 16000, "_type": "Audio"},
    "label": {"names": ["bonafide", "spoof"], "_type": "ClassLabel"},
    "speaker": {"dtype": "string", "_type": "Value"},
    "snr_db": {"dtype": "float64", "_type": "Value"},
}

CARD = """---
dataset_info:
  features:
  - name: audio
    dtype:
      audio:
        sampling_rate: 16000
  - name: label
    dtype:
      class_label:
        names:
          '0': bonafide
          '1': spoof
  - name: speaker
    dtype: string
  - name: snr_db
    dtype: float64
  splits:
  - name: train
    num_examples: 5
  - name: validation
    num_examples: 2
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*
  - split: validation
    path: data/validation-*
---
# A tiny anti-spoofing set
"""


def hf_schema(features: Mapping[str, Any] = FEATURES) -> pa.Schema:
    """The Arrow schema ``datasets`` writes for ``features`` (Audio, ClassLabel, Value)."""
    types = {"Audio": AUDIO, "ClassLabel": pa.int64()}
    values = {"string": pa.string(), "float64": pa.float64(), "int64": pa.int64(), "bool": pa.bool_()}
    fields = [pa.field(name, types.get(f["_type"]) or values[f["dtype"]]) for name, f in features.items()]
    return pa.schema(fields, metadata={"huggingface": json.dumps({"info": {"features": dict(features)}})})


def write_hf_parquet(path: Path, rows: Sequence[Mapping[str, Any]], features: Mapping[str, Any] = FEATURES,
                     row_group_size: int = 100) -> Path:
    """Write ``rows`` (``{"audio": {"bytes": ..., "path": ...}, "label": 0, ...}``) as ``datasets`` does."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(list(rows), schema=hf_schema(features)), path,
                   row_group_size=row_group_size)
    return path


def audio(data: bytes | None, name: str | None) -> dict[str, Any]:
    """One ``Audio`` value as stored on disk."""
    return {"bytes": data, "path": name}
