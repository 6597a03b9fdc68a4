"""Real audio files for the corpus-adapter and ingest tests, made with ffmpeg's lavfi.

Every file gets distinct content (the tone frequency is part of the call) so that no two
are byte-identical unless a test wants a duplicate.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

_CODEC_ARGS = {
    ".wav": ["-c:a", "pcm_s16le"],
    ".flac": ["-c:a", "flac"],
    ".mp3": ["-c:a", "libmp3lame", "-b:a", "64k"],
    ".m4a": ["-c:a", "aac", "-b:a", "64k"],
    ".ogg": ["-c:a", "libvorbis"],
}


def tone(path: Path, freq: float = 440.0, *, rate: int = 16_000, seconds: float = 0.5,
         channels: int = 1, noise: bool = False) -> Path:
    """Write a sine tone (or pink noise) to ``path``; the suffix picks the codec."""
    path.parent.mkdir(parents=True, exist_ok=True)
    source = (f"anoisesrc=color=pink:sample_rate={rate}:duration={seconds}:seed={int(freq)}" if noise
              else f"sine=frequency={freq}:sample_rate={rate}:duration={seconds}")
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", source, "-ac", str(channels),
         *_CODEC_ARGS[path.suffix], str(path)],
        check=True,
    )
    return path


def broken_files(folder: Path, like: Path) -> dict[str, str]:
    """Bad inputs in ``folder`` -> the reject reason ingest must give each one.

    ``like`` is a good WAV file whose first bytes make the truncated one.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.wav").write_bytes(b"")
    (folder / "truncated.wav").write_bytes(like.read_bytes()[:30])  # cut inside the header
    (folder / "text.wav").write_text("this is a text file, not audio\n" * 20)
    (folder / "folder.wav").mkdir()
    return {"empty.wav": "empty", "truncated.wav": "undecodable", "text.wav": "undecodable",
            "folder.wav": "not_a_file"}


def copy(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst
