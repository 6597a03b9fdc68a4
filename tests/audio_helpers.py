"""Real audio for tests (espeak-ng speech, ffmpeg tones) and a ``clips`` table without ingest.

The conditions and features tests need clips in a lake; they write ``clips`` rows directly
with :meth:`Lake.write_shard` so they do not depend on the ingest stage.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pyarrow as pa

from dfpipe.audio_io import probe
from dfpipe.lake import Lake, stable_id


def speak(path: Path, text: str, voice: str = "en") -> Path:
    """Synthesize ``text`` with espeak-ng into a WAV file (22.05 kHz mono)."""
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True, capture_output=True)
    return path


def ffmpeg(path: Path, *args: str) -> Path:
    """Run ``ffmpeg -y <args> path`` (e.g. lavfi sources, format conversions)."""
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args, str(path)],
                   check=True)
    return path


def write_clips(lake: Lake, corpus: str, files: list[Path]) -> list[str]:
    """Write one ``clips`` row per file (probing the real ones); returns the clip ids.

    Files that do not decode still get a row (codec ``unknown``) so later stages meet them.
    """
    rows = []
    for path in files:
        data = path.read_bytes()
        try:
            info = probe(path)
            codec, fmt, rate, channels, duration = (info.codec, info.format, info.sample_rate,
                                                   info.channels, info.duration_s)
        except Exception:  # noqa: BLE001 - a deliberately broken test file
            codec, fmt, rate, channels, duration = "unknown", "unknown", 0, 0, 0.0
        rows.append({
            "clip_id": stable_id(corpus, data), "corpus": corpus, "label": "bonafide",
            "source_uri": str(path), "source_relpath": path.name, "source_codec": codec,
            "source_format": fmt, "duration_s": duration, "sample_rate": rate, "channels": channels,
            "size_bytes": len(data), "content_sha256": hashlib.sha256(data).hexdigest(),
        })
    lake.write_shard("clips", pa.Table.from_pylist(rows), shard=stable_id(corpus, *[r["clip_id"] for r in rows]),
                     partition={"corpus": corpus})
    return [r["clip_id"] for r in rows]
