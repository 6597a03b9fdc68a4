"""Real speech clips for the benchmarks: espeak-ng sentences written into a fresh lake."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pyarrow as pa

from dfpipe.audio_io import probe
from dfpipe.lake import Lake, stable_id

SENTENCES = [
    "The study found that small models generalise better than large ones.",
    "Please leave a message after the tone, and we will call you back.",
    "Audio deepfakes are often compressed, normalised and trimmed before release.",
    "Every clip is three seconds long at sixteen kilohertz.",
]
VOICES = ["en", "en-us", "en-gb-x-rp", "en+f3", "en+m3", "en-us+f2"]


def make_corpus(folder: Path, n: int, corpus: str = "bench") -> tuple[Lake, list[Path]]:
    """Write ``n`` espeak-ng WAV files (22.05 kHz, 3-5 s) and their ``clips`` rows into ``folder/lake``."""
    folder.mkdir(parents=True, exist_ok=True)
    files, rows = [], []
    for i in range(n):
        path = folder / f"clip{i:04d}.wav"
        voice, text = VOICES[i % len(VOICES)], SENTENCES[i % len(SENTENCES)]
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(150 + 7 * (i % 9)), "-w", str(path), text],
                       check=True, capture_output=True)
        data, info = path.read_bytes(), probe(path)
        files.append(path)
        rows.append({"clip_id": stable_id(corpus, data), "corpus": corpus, "label": "spoof", "source_uri": str(path),
                     "source_relpath": path.name, "source_codec": info.codec, "source_format": info.format,
                     "duration_s": info.duration_s, "sample_rate": info.sample_rate, "channels": info.channels,
                     "size_bytes": len(data), "content_sha256": hashlib.sha256(data).hexdigest()})
    lake = Lake(str(folder / "lake"))
    lake.write_shard("clips", pa.Table.from_pylist(rows), shard="bench", partition={"corpus": corpus})
    return lake, files


def copy_clips(source: Lake, folder: Path) -> Lake:
    """A fresh lake holding only ``source``'s clips table (for another timed run)."""
    lake = Lake(str(folder))
    for part in source.files("clips"):
        corpus = Path(part).parent.name.split("=", 1)[1]
        lake.write_shard("clips", source.read("clips", partition={"corpus": corpus}), shard="bench",
                         partition={"corpus": corpus})
    return lake
