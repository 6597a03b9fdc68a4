"""Build the demo corpus: plan (seeded), render shards in parallel, write the manifest.

Output layout (``OUT``)::

    OUT/manifest.csv        path,label,generator,family,speaker,language,split
                            (generator and family empty for bona fide, as in ``clips``)
    OUT/<split>/<label>/<generator>/<id>.flac
    OUT/ATTRIBUTION.md      licences and credits of every source
    OUT/build.json          the build's key, counts and exclusions (the cache marker)
    OUT/rejects.csv         planned clips that could not be made (only when there are any)

Splits mirror the study: ``train`` and ``test`` share generators and bona fide speakers
(different recordings, different texts); ``ood`` holds the neural family (Piper), the voices
of :attr:`DemoCorpusConfig.ood_languages` (Festival's Italian diphones) and the bona fide
speakers of :attr:`DemoCorpusConfig.ood_speakers`. No source recording, text or
clip is in two splits (so no text-voice pair is either). Every spoof is paired with one
bona fide clip of its split; the two are rendered together and cut to the same length, so
durations match exactly.

The plan depends only on the seed, the size, the config and the installed sources, so the
same arguments give a byte-identical manifest. Rendering skips files that exist (each is
written under a temporary name, then renamed), so a killed build resumes; a finished build
whose ``build.json`` key matches returns at once.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from dfpipe.config import AudioConfig, DemoCorpusConfig
from dfpipe.corpora.demo.attribution import attribution_markdown
from dfpipe.corpora.demo.channel import ChannelDraw, finish, prepare, write_flac
from dfpipe.corpora.demo.generators import VOICES, Voice, reseed, synthesize
from dfpipe.corpora.demo.sources import (
    NON_SPEECH,
    BonafideSource,
    SourceScan,
    list_bonafide_sources,
    load_source,
    scan_shard,
)
from dfpipe.corpora.demo.texts import text_pool
from dfpipe.errors import ConfigError, RejectedInput
from dfpipe.lake import atomic_write, stable_id
from dfpipe.stage_kit import Executor, map_shards

SIZES = ("small", "full")
MANIFEST_COLUMNS = ("path", "label", "generator", "family", "speaker", "language", "split")
DEMO_SPLITS = ("train", "test", "ood")
BUILD_VERSION = "8"
"""Bump when the plan or the channel changes, so old caches are not taken as current."""
_SOURCES_PER_SCAN_SHARD = 200


@dataclass(frozen=True)
class ClipPlan:
    """One clip to make: where it goes, what it is, and how to render it."""

    path: str  # relative to the corpus folder
    label: str
    generator: str
    family: str
    speaker: str
    language: str
    split: str
    draw: ChannelDraw
    source: BonafideSource | None = None  # bona fide
    voice: Voice | None = None  # spoof
    text: str | None = None  # spoof

    def manifest_row(self) -> tuple[str, ...]:
        return tuple(getattr(self, column) for column in MANIFEST_COLUMNS)


@dataclass(frozen=True)
class PairPlan:
    """A bona fide clip and its spoof twin: rendered together and cut to one length.

    Attributes:
        bonafide, spoof: the two clips (same split, same file name under their folders).
        max_duration_s: drawn cut length; both end up ``min(this, bona fide speech,
            spoof speech)`` long, so duration carries no label.
    """

    bonafide: ClipPlan
    spoof: ClipPlan
    max_duration_s: float


@dataclass(frozen=True)
class DemoBuildSummary:
    """What :func:`build_demo_corpus` did.

    Attributes:
        out_dir: the corpus folder (holds ``manifest.csv``).
        clips: rows in the manifest.
        built: clips rendered by this call; skipped: clips found already made.
        rejected: planned clips that failed (listed in ``rejects.csv``).
        excluded: bona fide source files not used, by verdict (``silence``, ``tone``,
            ``sound_effect``: the VAD exclusions; ``too_short``; ``undecodable``).
        cached: the whole build was a cache hit.
        seconds: wall-clock time of this call.
    """

    out_dir: Path
    clips: int
    built: int
    skipped: int
    rejected: int
    excluded: dict[str, int]
    cached: bool
    seconds: float
    counts: dict[str, int] = field(default_factory=dict)
    """Clips per ``split/label/generator``."""

    @property
    def non_speech(self) -> int:
        """Source files the energy/VAD check excluded as not speech."""
        return sum(self.excluded.get(verdict, 0) for verdict in NON_SPEECH)


def _build_key(size: str, seed: int, config: DemoCorpusConfig, sample_rate: int) -> str:
    return stable_id(BUILD_VERSION, size, str(seed), repr(config), str(sample_rate), length=16)


def _split_bonafide(
    usable: list[BonafideSource], size: str, seed: int, config: DemoCorpusConfig
) -> dict[str, list[BonafideSource]]:
    """Bona fide sources per split: ood speakers apart, the rest split per speaker."""
    rng = np.random.default_rng([seed, 1])
    splits: dict[str, list[BonafideSource]] = {name: [] for name in DEMO_SPLITS}
    for speaker in sorted({s.speaker for s in usable}):
        own = [s for s in usable if s.speaker == speaker]
        if speaker.startswith(config.ood_speakers):
            splits["ood"].extend(own)
            continue
        order = rng.permutation(len(own))
        n_test = round(config.test_fraction * len(own))
        splits["test"].extend(own[i] for i in order[:n_test])
        splits["train"].extend(own[i] for i in order[n_test:])
    for index, name in enumerate(DEMO_SPLITS):
        chosen = splits[name]
        order = rng.permutation(len(chosen))
        if size == "small":
            order = order[: config.small_per_class[index]]
        splits[name] = [chosen[i] for i in sorted(order)]
        if not splits[name]:
            raise ConfigError(f"demo corpus: no usable bona fide recording for split {name!r}")
    return splits


def _allocate_texts(need: dict[str, int], voices: dict[str, int], pool: list[str], language: str) -> dict[str, list[str]]:
    """Split-disjoint text lists: each split gets at least ``ceil(need / voices)`` texts
    (so its text-voice pairs are distinct) and a share of the rest in proportion to need."""
    minimum = {s: math.ceil(n / voices[s]) if n else 0 for s, n in need.items()}
    if sum(minimum.values()) > len(pool):
        raise ConfigError(
            f"demo corpus: {language} needs {sum(minimum.values())} distinct texts, texts.py has {len(pool)}"
        )
    spare, total = len(pool) - sum(minimum.values()), sum(need.values())
    out, start = {}, 0
    for split in DEMO_SPLITS:
        count = minimum[split] + (spare * need[split] // total if total else 0)
        out[split], start = pool[start : start + count], start + count
    return out


def plan_demo_corpus(
    usable: list[BonafideSource], speech_s: dict[str, float], size: str, seed: int, config: DemoCorpusConfig
) -> list[PairPlan]:
    """The deterministic list of bona fide / spoof pairs, sorted by file name.

    Each bona fide recording of a split gets one spoof twin of the same split: in train
    and test a voice of the recording's language (texts of that language), in ood a voice
    never trained on: the held-out family, or (for ``ood_native_share`` of the recordings
    in an ``ood_languages`` language) a voice of that language. Texts are split-disjoint;
    within a split a text-voice pair is used once.

    Args:
        usable: bona fide sources that passed the scan.
        speech_s: seconds of speech per ``source_id`` (from the scan).
        size: ``small`` or ``full``.
        seed: the only source of randomness.
        config: sizes, splits and channel ranges.
    """
    rng = np.random.default_rng([seed, 2])

    def draw() -> ChannelDraw:
        mp3 = rng.random() < config.mp3_share
        kbps = int(rng.choice(config.mp3_bitrates_kbps))
        return ChannelDraw(
            rms_dbfs=round(float(rng.uniform(*config.rms_dbfs_range)), 2),
            crest_db=round(float(rng.uniform(*config.crest_db_range)), 2),
            slope_db_per_octave=round(float(rng.uniform(*config.ltas_slope_range_db_per_octave)), 2),
            mp3_kbps=kbps if mp3 else 0,
        )

    bonafide = _split_bonafide(usable, size, seed, config)
    native = np.random.default_rng([seed, 3])
    groups: dict[tuple[str, str], list[BonafideSource]] = {}  # (split, spoof language) -> twins
    for split in DEMO_SPLITS:
        for source in bonafide[split]:
            language = source.language
            if split == "ood" and not (language in config.ood_languages and native.random() < config.ood_native_share):
                language = "en"  # the neural family's only language
            groups.setdefault((split, language), []).append(source)

    def is_ood_voice(voice: Voice) -> bool:
        return voice.family == config.ood_family or voice.language in config.ood_languages

    pairs: list[PairPlan] = []
    for language in sorted({lang for _, lang in groups}):
        voices = {
            split: [v for v in VOICES if v.language == language and is_ood_voice(v) == (split == "ood")]
            for split in DEMO_SPLITS
        }
        need = {split: len(groups.get((split, language), [])) for split in DEMO_SPLITS}
        for split in DEMO_SPLITS:
            if need[split] and not voices[split]:
                raise ConfigError(f"demo corpus: no {language} voice for split {split!r}")
        pool = list(text_pool(language))
        pool = [pool[i] for i in rng.permutation(len(pool))]
        texts = _allocate_texts(need, {s: max(1, len(v)) for s, v in voices.items()}, pool, language)
        for split in DEMO_SPLITS:
            split_texts, split_voices = texts[split], voices[split]
            # Round q pairs text i with voice (i + q) mod V: distinct pairs, voices balanced.
            chosen = [(split_texts[i], split_voices[(i + q) % len(split_voices)])
                      for q in range(len(split_voices)) for i in range(len(split_texts))][: need[split]]
            for (text, voice), source in zip(chosen, groups.get((split, language), []), strict=True):
                duration = round(min(speech_s[source.source_id], float(rng.uniform(*config.duration_range_s))), 4)
                bona_draw, spoof_draw = draw(), draw()
                name = stable_id(source.source_id, voice.speaker, text, repr(bona_draw), repr(spoof_draw),
                                 str(duration), length=16) + ".flac"
                pairs.append(PairPlan(
                    bonafide=ClipPlan(
                        path=f"{split}/bonafide/{source.collection}/{name}", label="bonafide",
                        generator="", family="", speaker=source.speaker,  # NULL in clips (schemas.py)
                        language=source.language, split=split, draw=bona_draw, source=source),
                    spoof=ClipPlan(
                        path=f"{split}/spoof/{voice.generator}/{name}", label="spoof",
                        generator=voice.generator, family=voice.family, speaker=voice.speaker,
                        language=voice.language, split=split, draw=spoof_draw, voice=voice, text=text),
                    max_duration_s=duration,
                ))
    return sorted(pairs, key=lambda p: p.bonafide.path)


def render_pair(pair: PairPlan, out_dir: Path, sample_rate: int, config: DemoCorpusConfig) -> bool:
    """Make a pair's two files unless both exist; returns whether it rendered.

    Both clips go through :func:`~dfpipe.corpora.demo.channel.prepare`, are cut to the
    shorter of the two (and ``max_duration_s``), then through
    :func:`~dfpipe.corpora.demo.channel.finish` with their own draws.

    Raises:
        RejectedInput: the source cannot be decoded, the generator failed, or the
            result holds no speech.
    """
    bona_path, spoof_path = out_dir / pair.bonafide.path, out_dir / pair.spoof.path
    if bona_path.exists() and spoof_path.exists():
        return False
    source, voice = pair.bonafide.source, pair.spoof.voice
    bona = prepare(load_source(source, sample_rate), sample_rate, config, is_g722=source.is_g722)  # type: ignore[union-attr]
    spoof = prepare(synthesize(voice, pair.spoof.text, sample_rate), sample_rate, config, is_g722=False)  # type: ignore[arg-type]
    samples = min(len(bona), len(spoof), round(pair.max_duration_s * sample_rate))
    write_flac(bona_path, finish(bona, sample_rate, samples, pair.bonafide.draw, config), sample_rate)
    write_flac(spoof_path, finish(spoof, sample_rate, samples, pair.spoof.draw, config), sample_rate)
    return True


def render_shard(args: tuple[str, list[PairPlan], int, DemoCorpusConfig]) -> tuple[int, int, list[tuple[str, str]]]:
    """Render one shard of pairs: ``(clips built, clips skipped, [(path, reason), ...])``.

    A failed pair rejects both of its clips, so the classes stay balanced per split.
    """
    out_dir, pairs, sample_rate, config = args
    if any(pair.spoof.voice is not None and pair.spoof.voice.engine == "piper" for pair in pairs):
        # Piper's noise comes from ONNX Runtime's generator: seed it per shard, so an
        # uninterrupted build makes the same audio on any worker.
        reseed(int(stable_id(pairs[0].bonafide.path, length=8), 16))
    built = skipped = 0
    rejected: list[tuple[str, str]] = []
    for pair in pairs:
        try:
            if render_pair(pair, Path(out_dir), sample_rate, config):
                built += 2
            else:
                skipped += 2
        except RejectedInput as exc:
            rejected += [(pair.bonafide.path, str(exc)), (pair.spoof.path, str(exc))]
    return built, skipped, rejected


def _write_text(path: Path, text: str) -> None:
    atomic_write(str(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def _csv_text(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def cached_build(
    out_dir: str | os.PathLike[str],
    size: str = "small",
    seed: int | None = None,
    config: DemoCorpusConfig | None = None,
    audio: AudioConfig | None = None,
) -> DemoBuildSummary | None:
    """The finished build in ``out_dir`` made with these arguments, or ``None``.

    A hit needs ``build.json`` with the same key (size, seed, config, sample rate, build
    version), ``manifest.csv``, and every file it lists.
    """
    config = config or DemoCorpusConfig()
    seed = config.seed if seed is None else seed
    key = _build_key(size, seed, config, (audio or AudioConfig()).sample_rate)
    out_dir = Path(out_dir)
    stamp = out_dir / "build.json"
    if not stamp.exists() or not (out_dir / "manifest.csv").exists():
        return None
    info = json.loads(stamp.read_text(encoding="utf-8"))
    if info.get("key") != key:
        return None
    with open(out_dir / "manifest.csv", newline="", encoding="utf-8") as handle:
        paths = [row["path"] for row in csv.DictReader(handle)]
    if not all((out_dir / p).exists() for p in paths):
        return None
    return DemoBuildSummary(out_dir, len(paths), 0, len(paths), info["rejected"], info["excluded"],
                            True, 0.0, info["counts"])


def build_demo_corpus(
    out_dir: str | os.PathLike[str],
    size: str = "small",
    seed: int | None = None,
    executor: Executor | None = None,
    config: DemoCorpusConfig | None = None,
    audio: AudioConfig | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> DemoBuildSummary:
    """Build (or reuse) the demo corpus in ``out_dir``.

    Args:
        out_dir: corpus folder, created if needed; use one folder per size and seed.
        size: ``small`` (about 200 clips, for tests) or ``full`` (every usable bona fide
            recording and as many spoofs, for the demo).
        seed: plan seed (default ``config.seed``).
        executor: ``None`` (this process) or anything with ``submit`` (a Dask Client).
        config: corpus settings (default :class:`DemoCorpusConfig`).
        audio: the sample rate comes from here (default :class:`AudioConfig`).
        on_progress: ``on_progress(phase, done, total)``, e.g. :meth:`dfpipe.progress.Progress.update`:
            phase ``scanning sources`` (recordings scanned) after each scan shard, then
            ``rendering pairs`` (pairs done of pairs planned) after each rendered shard.

    Returns:
        A :class:`DemoBuildSummary`; ``cached`` is set when nothing had to be done.

    Raises:
        ConfigError: unknown size, or no bona fide sources (install the
            ``asterisk-core-sounds-*-g722`` packages).
    """
    started = time.perf_counter()
    if size not in SIZES:
        raise ConfigError(f"demo corpus size must be one of {SIZES}, got {size!r}")
    config = config or DemoCorpusConfig()
    seed = config.seed if seed is None else seed
    sample_rate = (audio or AudioConfig()).sample_rate
    out = Path(out_dir)
    key = _build_key(size, seed, config, sample_rate)
    cached = cached_build(out, size, seed, config, audio)
    if cached is not None:
        return DemoBuildSummary(**{**asdict(cached), "seconds": time.perf_counter() - started})

    sources = list_bonafide_sources()
    if not sources:
        raise ConfigError(
            "demo corpus: no bona fide recordings found; install asterisk-core-sounds-{en,es,fr,it,ru}-g722 "
            "and pocketsphinx-testdata (apt-get install ...)"
        )
    shards = [(sources[i : i + _SOURCES_PER_SCAN_SHARD], sample_rate, config)
              for i in range(0, len(sources), _SOURCES_PER_SCAN_SHARD)]
    report = on_progress or (lambda phase, done, total: None)
    scans: list[SourceScan] = []
    report("scanning sources", 0, len(sources))
    for shard in map_shards(scan_shard, shards, executor):
        scans.extend(shard)
        report("scanning sources", len(scans), len(sources))
    verdicts = {scan.source_id: scan for scan in scans}
    usable = [s for s in sources if verdicts[s.source_id].verdict == "speech"]
    excluded = dict(sorted(Counter(s.verdict for s in scans if s.verdict != "speech").items()))

    pairs = plan_demo_corpus(usable, {s.source_id: s.speech_s for s in scans}, size, seed, config)
    out.mkdir(parents=True, exist_ok=True)
    step = max(1, config.clips_per_shard // 2)
    work = [(str(out), pairs[i : i + step], sample_rate, config) for i in range(0, len(pairs), step)]
    built = skipped = 0
    rejected: list[tuple[str, str]] = []
    report("rendering pairs", 0, len(pairs))
    for shard_built, shard_skipped, shard_rejected in map_shards(render_shard, work, executor):
        built, skipped = built + shard_built, skipped + shard_skipped
        rejected.extend(shard_rejected)
        report("rendering pairs", (built + skipped + len(rejected)) // 2, len(pairs))

    failed = {path for path, _ in rejected}
    clips = sorted((clip for pair in pairs for clip in (pair.bonafide, pair.spoof)), key=lambda c: c.path)
    kept = [clip for clip in clips if clip.path not in failed]
    counts = dict(sorted(Counter(f"{c.split}/{c.label}/{c.generator}" for c in kept).items()))
    if rejected:
        _write_text(out / "rejects.csv", _csv_text(("path", "reason"), sorted(rejected)))
    _write_text(out / "ATTRIBUTION.md", attribution_markdown())
    _write_text(out / "manifest.csv", _csv_text(MANIFEST_COLUMNS, [c.manifest_row() for c in kept]))
    stamp = {"key": key, "size": size, "seed": seed, "clips": len(kept), "rejected": len(rejected),
             "excluded": excluded, "counts": counts}
    _write_text(out / "build.json", json.dumps(stamp, indent=1, sort_keys=True) + "\n")
    return DemoBuildSummary(out, len(kept), built, skipped, len(rejected), excluded, False,
                            time.perf_counter() - started, counts)
