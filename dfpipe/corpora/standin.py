"""Stand-in corpora: a public release's exact layout, filled with the demo corpus' audio.

``dfpipe corpus build-standin --like FORMAT --out DIR`` writes one, so a study written for
ASVspoof5, In-the-Wild, Deepfake-Eval-2024 or a folder corpus can be checked end to end
(``dfpipe study --rehearse``) before the real corpus is downloaded. The layouts, as each
release unpacks (and as its adapter in :mod:`dfpipe.corpora` reads it):

``asvspoof5`` (DIR is the corpus root)::

    ASVspoof5_protocols/ASVspoof5.train.tsv                 Track 1, 10 columns, ~1:9 bona fide:spoof
    ASVspoof5_protocols/ASVspoof5.{dev,eval}.track_1.tsv
    ASVspoof5_protocols/ASVspoof5.{dev,eval}.track_2.enroll.tsv    SPEAKER_ID enrol,files
    ASVspoof5_protocols/ASVspoof5.{dev,eval}.track_2.trial.tsv     SPEAKER_ID FILE GENDER ATTACK_LABEL KEY
    ASVspoof5_protocols/ASVspoof5.codec.config.csv
    flac_T/T_0000000000.flac ...   flac_D/D_..., D_A... (Track 2 enrolment)   flac_E_eval/E_..., E_A...

``in-the-wild``: ``DIR/release_in_the_wild/meta.csv`` (``file,speaker,label``) and ``N.wav``.
``deepfake-eval-2024``: ``DIR/audio-metadata-publish.csv`` and mp3 / wav / m4a files.
``folder``: ``DIR/{train,test}/real/<speaker>/...`` and ``DIR/{train,test}/fake/<generator>/...``.

Every file is a demo clip (16 kHz) with its own drawn gain, so no two files share content
even when a clip is used twice. Spoof attacks are the demo generators renamed to the
release's vocabulary (ASVspoof5 ``A01``... with ``AC1``... tags); no codec is applied (the
ASVspoof5 codec columns say ``-``). The folder is built under a temporary name and renamed
when complete: a killed build leaves nothing that looks finished.
"""

from __future__ import annotations

import csv
import itertools
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from dfpipe.audio_io import decode
from dfpipe.config import STANDIN_RELEASES, AudioConfig, StandinConfig
from dfpipe.corpora.demo.channel import _encode
from dfpipe.errors import ConfigError
from dfpipe.lake import stable_id

ASV5_SPLITS = (("train", "T", "flac_T"), ("dev", "D", "flac_D"), ("eval", "E", "flac_E_eval"))
"""(split, file-name letter, audio folder) of ASVspoof5."""
ASV5_FIRST_ATTACK = {"train": 1, "dev": 9, "eval": 17}
"""The release's attack numbering: A01-A08 train, A09-A16 dev, A17-A32 eval."""
SPEAKERS_PER_PART = 4
LOSSY_KBPS = 64  # the Deepfake-Eval-2024 stand-in's mp3 and m4a files


@dataclass(frozen=True)
class StandinSummary:
    """What :func:`build_standin` wrote."""

    like: str
    root: Path
    """The folder to ingest with ``--format <like>``."""
    files: int
    """Audio files written (ASVspoof5: Track 2 enrolment files included)."""
    rows: int
    """Rows of the files the adapter reads: one clip each."""
    seconds: float


@dataclass(frozen=True)
class _Clip:
    path: Path
    label: str
    generator: str
    speaker: str


class _Writer:
    """Writes demo clips as stand-in files: round-robin per label over a seeded order,
    each file with its own gain."""

    def __init__(self, source: Path, config: StandinConfig) -> None:
        manifest = source / "manifest.csv"
        if not manifest.is_file():
            raise ConfigError(f"{manifest} not found: the stand-in's audio comes from a built demo corpus "
                              "(dfpipe corpus build-demo)")
        with open(manifest, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        self.pools: dict[str, Iterator[_Clip]] = {}
        for label in ("bonafide", "spoof"):
            clips = sorted((_Clip(source / r["path"], label, r["generator"], r["speaker"])
                            for r in rows if r["label"] == label),
                           key=lambda c: stable_id(str(config.seed), c.path.name))
            if not clips:
                raise ConfigError(f"{manifest} has no {label} clip")
            self.pools[label] = itertools.cycle(clips)
        self.generators = sorted({r["generator"] for r in rows if r["label"] == "spoof"})
        self.rng = np.random.default_rng(config.seed)
        self.config = config
        self.sample_rate = AudioConfig().sample_rate
        self.files = 0

    def next(self, label: str) -> _Clip:
        return next(self.pools[label])

    def write(self, clip: _Clip, path: Path) -> None:
        wave = decode(clip.path, self.sample_rate) * 10 ** (self.rng.uniform(*self.config.gain_db_range) / 20)
        path.parent.mkdir(parents=True, exist_ok=True)
        suffix = path.suffix.lower()
        if suffix in (".flac", ".wav"):
            soundfile.write(path, np.clip(wave, -1.0, 1.0), self.sample_rate, subtype="PCM_16",
                            format=suffix[1:].upper())
        else:
            container, codec = {".mp3": ("mp3", "libmp3lame"), ".m4a": ("ipod", "aac")}[suffix]
            path.write_bytes(_encode(wave, self.sample_rate, container, codec, LOSSY_KBPS * 1000))
        self.files += 1


def _labels(n: int, bonafide: int, rng: np.random.Generator) -> list[str]:
    """``n`` labels, ``bonafide`` of them bona fide, in a seeded order (both classes present)."""
    labels = ["bonafide"] * bonafide + ["spoof"] * (n - bonafide)
    return [labels[i] for i in rng.permutation(n)]


def _lines(path: Path, lines: list[str]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return len(lines)


def _csv(path: Path, header: list[str], rows: list[list[str]]) -> int:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return len(rows)


def _asvspoof5(out: Path, writer: _Writer) -> tuple[Path, int]:
    n = writer.config.n
    bonafide = max(1, round(n * writer.config.asvspoof5_bonafide_share))
    protocols = out / "ASVspoof5_protocols"
    rows = 0
    for split, letter, folder in ASV5_SPLITS:
        speakers = [(f"{letter}_{1000 + i:04d}", "FM"[i % 2]) for i in range(SPEAKERS_PER_PART)]
        track_1 = []
        for index, label in enumerate(_labels(n, bonafide, writer.rng)):
            clip = writer.next(label)
            speaker, gender = speakers[index % len(speakers)]
            name = f"{letter}_{index:010d}"
            writer.write(clip, out / folder / f"{name}.flac")
            if label == "bonafide":
                track_1.append((speaker, name, gender, "-", "bonafide", "bonafide"))
            else:
                attack = writer.generators.index(clip.generator)
                track_1.append((speaker, name, gender, f"AC{attack % 3 + 1}",
                                f"A{ASV5_FIRST_ATTACK[split] + attack:02d}", "spoof"))
        protocol = "ASVspoof5.train.tsv" if split == "train" else f"ASVspoof5.{split}.track_1.tsv"
        rows += _lines(protocols / protocol, [f"{spk} {name} {gender} - - - {tag} {attack} {key} -"
                                              for spk, name, gender, tag, attack, key in track_1])
        if split != "train":
            _track_2(protocols, out / folder, split, letter, speakers, track_1, writer)
    _csv(protocols / "ASVspoof5.codec.config.csv", ["CODEC", "CODEC_Q", "DESCRIPTION"],
         [["-", "-", "no codec (every stand-in file)"]])
    return out, rows


def _track_2(protocols: Path, folder: Path, split: str, letter: str, speakers: list[tuple[str, str]],
             track_1: list[tuple[str, ...]], writer: _Writer) -> None:
    """Enrolment lists and trials of one split: every speaker enrolled with bona fide files
    ``<letter>_A...``; each Track 1 file a trial of its own speaker (target or spoof), each
    bona fide file also one of the next speaker (nontarget)."""
    enrol, index = [], 0
    for speaker, _ in speakers:
        names = []
        for _ in range(writer.config.enrolment_per_speaker):
            names.append(f"{letter}_A{index:09d}")
            writer.write(writer.next("bonafide"), folder / f"{names[-1]}.flac")
            index += 1
        enrol.append(f"{speaker} {','.join(names)}")
    _lines(protocols / f"ASVspoof5.{split}.track_2.enroll.tsv", enrol)
    ids = [speaker for speaker, _ in speakers]
    trials = []
    for speaker, name, gender, _tag, attack, key in track_1:
        trials.append(f"{speaker} {name} {gender} {attack} {'spoof' if key == 'spoof' else 'target'}")
        if key == "bonafide":
            other = ids[(ids.index(speaker) + 1) % len(ids)]
            trials.append(f"{other} {name} {gender} {attack} nontarget")
    _lines(protocols / f"ASVspoof5.{split}.track_2.trial.tsv", trials)


def _in_the_wild(out: Path, writer: _Writer) -> tuple[Path, int]:
    root = out / "release_in_the_wild"
    rows = []
    for index, label in enumerate(_labels(writer.config.n, writer.config.n // 2, writer.rng)):
        clip = writer.next(label)
        writer.write(clip, root / f"{index}.wav")
        rows.append([f"{index}.wav", clip.speaker or "unknown", "bona-fide" if label == "bonafide" else "spoof"])
    return root, _csv(root / "meta.csv", ["file", "speaker", "label"], rows)


def _deepfake_eval_2024(out: Path, writer: _Writer) -> tuple[Path, int]:
    rows = []
    containers = itertools.cycle(("mp3", "wav", "m4a"))
    for index, label in enumerate(_labels(writer.config.n, writer.config.n // 2, writer.rng)):
        name = f"{stable_id('deepfake-eval-2024', str(writer.config.seed), str(index), length=16)}.{next(containers)}"
        writer.write(writer.next(label), out / name)
        rows.append([name, "Real" if label == "bonafide" else "Fake", "Train" if index % 3 else "Test", "English"])
    return out, _csv(out / "audio-metadata-publish.csv", ["Filename", "Ground Truth", "Finetuning Set", "Language"],
                     rows)


def _folder(out: Path, writer: _Writer) -> tuple[Path, int]:
    rows = 0
    for split in ("train", "test"):
        for index, label in enumerate(_labels(writer.config.n, writer.config.n // 2, writer.rng)):
            clip = writer.next(label)
            below = f"real/{clip.speaker or 'unknown'}" if label == "bonafide" else f"fake/{clip.generator}"
            writer.write(clip, out / split / below / f"{index:05d}.flac")
            rows += 1
    return out, rows


LAYOUTS: dict[str, Callable[[Path, _Writer], tuple[Path, int]]] = {
    "asvspoof5": _asvspoof5,
    "in-the-wild": _in_the_wild,
    "deepfake-eval-2024": _deepfake_eval_2024,
    "folder": _folder,
}
assert tuple(LAYOUTS) == STANDIN_RELEASES


def build_standin(like: str, out: str | os.PathLike[str], source: str | os.PathLike[str],
                  config: StandinConfig | None = None) -> StandinSummary:
    """Lay out a stand-in of release ``like`` in ``out`` from the demo corpus at ``source``.

    Raises:
        ConfigError: unknown ``like``, ``out`` already there, or no demo corpus at ``source``.
    """
    if like not in LAYOUTS:
        raise ConfigError(f"no stand-in for {like!r}; choose one of {list(STANDIN_RELEASES)}")
    config = config or StandinConfig()
    out = Path(os.path.abspath(out))
    if out.exists():
        raise ConfigError(f"{out} already exists; remove it or choose another --out")
    started = time.perf_counter()
    writer = _Writer(Path(source), config)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        root, rows = LAYOUTS[like](tmp, writer)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return StandinSummary(like=like, root=out / root.relative_to(tmp), files=writer.files, rows=rows,
                          seconds=time.perf_counter() - started)
