"""Where the demo corpus's bona fide speech comes from, and which of it is speech at all.

Two Debian packages of real recordings (paths as installed):

- ``asterisk-core-sounds-{en,es,fr,it,ru}-g722``: professional IVR prompts, raw G.722
  (16 kHz, 50-7,000 Hz), one folder per voice::

      /usr/share/asterisk/sounds/en_US_f_Allison/vm-login.g722
      /usr/share/asterisk/sounds/en_US_f_Allison/digits/7.g722
      /usr/share/asterisk/sounds/fr_CA_f_June/...   it_IT_m_Carlo/...   ru_RU_f_IvrvoiceRU/...

  The folder name is the speaker (``es_MX_f_Allison`` is the same person as the English
  voice, recorded separately) and its first two letters the language.
- ``pocketsphinx-testdata``: 14 utterances, 16 kHz, 16-bit (LibriVox readings, card
  names, digits): ``.wav`` files and headerless ``.raw`` little-endian PCM.

Not every file is speech: folders of silence, beeps, rising/falling tones, and a recording
of monkeys (``tt-monkeys``, a sound effect that no energy test tells from speech, so it
is excluded by name). :func:`scan_source` gives each file a verdict; the build reports the
counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dfpipe.audio_io import decode
from dfpipe.config import DemoCorpusConfig
from dfpipe.corpora.demo.channel import speech_bounds, tonal_share
from dfpipe.errors import RejectedInput

ASTERISK_ROOT = Path("/usr/share/asterisk/sounds")
POCKETSPHINX_ROOT = Path("/usr/share/pocketsphinx/test/data")
SOUND_EFFECTS = frozenset({"tt-monkeys"})
"""Prompt names that are recorded sound effects, not speech (excluded by name)."""
_POCKETSPHINX_SPEAKERS = {"librivox": "pocketsphinx-librivox", "cards": "pocketsphinx-cards"}
_RAW_RATE = 16_000  # pocketsphinx's .raw files: 16 kHz mono s16le (its test suite reads them so)


@dataclass(frozen=True)
class BonafideSource:
    """One real recording.

    Attributes:
        source_id: stable name, e.g. ``asterisk/en_US_f_Allison/digits/7``.
        path: the file.
        collection: ``asterisk`` or ``pocketsphinx`` (the manifest's ``generator``).
        speaker: voice folder (``en_US_f_Allison``) or ``pocketsphinx-<set>``.
        language: ISO 639-1 code.
    """

    source_id: str
    path: Path
    collection: str
    speaker: str
    language: str

    @property
    def is_g722(self) -> bool:
        return self.path.suffix == ".g722"


@dataclass(frozen=True)
class SourceScan:
    """What :func:`scan_source` found.

    Attributes:
        source_id: as in :class:`BonafideSource`.
        verdict: ``speech``, or why not: ``silence``, ``tone``, ``sound_effect``,
            ``too_short`` (less than ``min_speech_s`` of speech) or ``undecodable``.
        speech_s: seconds from the first to the last active frame (0 when none).
    """

    source_id: str
    verdict: str
    speech_s: float


NON_SPEECH = ("silence", "tone", "sound_effect")
"""Verdicts that mean "not speech" (the VAD exclusions the build reports)."""


def list_bonafide_sources(
    asterisk_root: Path = ASTERISK_ROOT, pocketsphinx_root: Path = POCKETSPHINX_ROOT
) -> list[BonafideSource]:
    """Every candidate bona fide file under the two roots, sorted by ``source_id``.

    Missing roots give no sources (the build then says which package to install).
    """
    sources = [
        BonafideSource(
            source_id="asterisk/" + path.relative_to(asterisk_root).with_suffix("").as_posix(),
            path=path,
            collection="asterisk",
            speaker=path.relative_to(asterisk_root).parts[0],
            language=path.relative_to(asterisk_root).parts[0][:2],
        )
        for path in asterisk_root.glob("*/**/*.g722")
    ]
    for path in [*pocketsphinx_root.glob("*/*.wav"), *pocketsphinx_root.glob("**/*.raw")]:
        group = path.parent.name if path.parent != pocketsphinx_root else "cmu"
        sources.append(
            BonafideSource(
                source_id="pocketsphinx/" + path.relative_to(pocketsphinx_root).with_suffix("").as_posix(),
                path=path,
                collection="pocketsphinx",
                speaker=_POCKETSPHINX_SPEAKERS.get(group, f"pocketsphinx-{group}"),
                language="en",
            )
        )
    return sorted(sources, key=lambda s: s.source_id)


def load_source(source: BonafideSource, sample_rate: int) -> np.ndarray:
    """Decode a source to mono float32 at ``sample_rate`` Hz, shape ``(samples,)``.

    Raises:
        RejectedInput: the file is empty or undecodable.
    """
    if source.path.suffix == ".raw":
        pcm = np.fromfile(source.path, dtype="<i2").astype(np.float32) / 32768.0
        if pcm.size == 0:
            raise RejectedInput("empty", f"{source.path} is empty (0 bytes)")
        if sample_rate == _RAW_RATE:
            return pcm
        from scipy.signal import resample_poly

        return resample_poly(pcm, sample_rate, _RAW_RATE).astype(np.float32)
    return decode(source.path, sample_rate)


def scan_source(source: BonafideSource, sample_rate: int, config: DemoCorpusConfig) -> SourceScan:
    """Decide whether a source is usable speech (energy VAD + tone test + name list)."""
    if source.path.stem in SOUND_EFFECTS:
        return SourceScan(source.source_id, "sound_effect", 0.0)
    try:
        x = load_source(source, sample_rate)
    except RejectedInput:
        return SourceScan(source.source_id, "undecodable", 0.0)
    bounds = speech_bounds(x, sample_rate, config)
    if bounds is None:
        return SourceScan(source.source_id, "silence", 0.0)
    speech_s = (bounds[1] - bounds[0]) / sample_rate
    if tonal_share(x[bounds[0] : bounds[1]]) > config.tonal_peak_ratio:
        return SourceScan(source.source_id, "tone", speech_s)
    if speech_s < config.min_speech_s:
        return SourceScan(source.source_id, "too_short", speech_s)
    return SourceScan(source.source_id, "speech", speech_s)


def scan_shard(args: tuple[list[BonafideSource], int, DemoCorpusConfig]) -> list[SourceScan]:
    """:func:`scan_source` over one shard (the unit :func:`dfpipe.stage_kit.map_shards` runs)."""
    sources, sample_rate, config = args
    return [scan_source(source, sample_rate, config) for source in sources]
