"""Every default dfpipe uses, in one place.

Each stage takes one of these frozen dataclasses; the CLI, the flows, the benchmarks and the
tests read them instead of repeating literals. A bad or conflicting value fails when the
object is built (``__post_init__``), naming the field.

The numbers follow the study dfpipe reproduces (docs/study.md); where a number is ours, the
comment says why. The CLI's option defaults and help texts, the study file's unset fields and
the tests read these classes, so a default changed here changes everywhere.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from dfpipe.errors import ConfigError

LABELS = ("bonafide", "spoof")
"""The two classes, in the spelling of the ASVspoof key files."""

SPLITS = ("train", "dev", "test", "ood", "eval")
"""Split names a corpus adapter may emit (``None`` when the corpus does not say)."""

RAW_CONDITION = "raw"
"""The condition that needs no work: features and waveforms read the ingested files as they
are. Data specs without ``:CONDITION`` mean this one."""

VAL_DATASET = "val"
"""``predictions.dataset`` of each run's own validation split (carved from its train set), so
no study or ``--eval`` set may take this name."""

POLISHED_SUFFIX = "_polished"
"""Dataset ``X_polished`` is the polished twin of dataset ``X`` (``sql/polished_gap.sql``
pairs them by this name)."""

DASK_ADDRESS_ENV = "DFPIPE_DASK_ADDRESS"
"""Environment variable naming a Dask scheduler to join (``--dask-address`` reads it too)."""

LAKE_ENV = "DFPIPE_LAKE"
"""Environment variable naming the lake root (``--lake`` reads it)."""

IN_PROCESS_SHARDS_ENV = "DFPIPE_IN_PROCESS_SHARDS"
"""Environment variable of ``--in-process-shards`` (:attr:`DaskConfig.in_process_shards`)."""

PREFECT_SERVER_ENV = "DFPIPE_PREFECT_SERVER"
"""How a flow finds a Prefect API when ``PREFECT_API_URL`` is unset and no dfpipe server runs
(:class:`PrefectServerConfig`): ``background`` starts one and leaves it running for later
commands (the ``dfpipe`` command line sets this); ``temporary`` (the default elsewhere) starts
Prefect's temporary server for this process only."""

PREFECT_SERVER_MODES = ("background", "temporary")


def _positive(owner: str, **values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ConfigError(f"{owner}.{name} must be > 0, got {value!r}")


@dataclass(frozen=True)
class AudioConfig:
    """How every clip is read before features: 16 kHz mono, 3 s, peak-normalised."""

    sample_rate: int = 16_000
    clip_seconds: float = 3.0

    def __post_init__(self) -> None:
        _positive("AudioConfig", sample_rate=self.sample_rate, clip_seconds=self.clip_seconds)

    @property
    def clip_samples(self) -> int:
        """Samples per clip (48,000 at the defaults)."""
        return round(self.sample_rate * self.clip_seconds)


@dataclass(frozen=True)
class DecodeConfig:
    """Reading untrusted audio (:mod:`dfpipe.audio_io`): the decoder sandbox and the signal checks."""

    timeout_s: float = 30.0
    """The sandboxed decoder is killed (``decoder_timeout``) when it gives no sign of progress
    for this long: a hang, not a slow file (it reports progress at least once a second)."""
    start_timeout_s: float = 120.0
    """Time a new sandbox process may take to import PyAV and report ready (a loaded machine)."""
    chunk_s: float = 10.0
    """Seconds of decoded audio per message from the sandbox (bounds the memory in flight)."""
    constant_ptp: float = 1 / 32768
    """A file whose samples, over every channel, all lie within this peak-to-peak range
    (one step of 16-bit PCM) is digital silence or DC: rejected as ``constant_signal``."""
    truncation_ratio: float = 0.98
    """A file decoding to less than this share of the duration its header declares (and
    ``truncation_min_gap_s`` less) is flagged as truncated, as is one whose decoding fails midway."""
    truncation_min_gap_s: float = 0.05

    def __post_init__(self) -> None:
        _positive("DecodeConfig", timeout_s=self.timeout_s, start_timeout_s=self.start_timeout_s,
                  chunk_s=self.chunk_s, truncation_ratio=self.truncation_ratio)
        if self.constant_ptp < 0 or self.truncation_min_gap_s < 0:
            raise ConfigError("DecodeConfig.constant_ptp and truncation_min_gap_s must be >= 0")


@dataclass(frozen=True)
class IngestConfig:
    """Probing raw corpora into the ``clips`` table."""

    files_per_shard: int = 64
    """Unit of parallel work and of commit: each shard is probed by one worker and written
    as one Parquet file, so a killed run loses at most the shards in flight."""
    allow_outside_root: bool = False
    """Manifests may not point outside the corpus root unless this is set (security)."""
    min_duration_s: float = 0.1
    """Shorter audio is rejected as empty: no front end can make a clip of it."""
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    """Each file is probed in the decoder sandbox, with these timeouts and signal checks."""
    adapter_options: Mapping[str, str] | tuple[tuple[str, str], ...] = ()
    """Keyword options for the corpus adapter (``--label-column x`` -> ``{"label_column": "x"}``),
    checked against the adapter's keywords by :func:`dfpipe.ingest.corpus_entries`; stored as
    sorted ``(name, value)`` pairs. Their defaults are the adapters' (:class:`HFParquetConfig`,
    :class:`LhotseConfig`, :class:`ManifestConfig`)."""
    sample_per_split: int | None = None
    """Ingest at most this many of the adapter's items per split (items without a split
    count as one), each label keeping its share (at least one clip), a seeded draw by
    relpath; rejects pass as they are. ``None``: every item. ``dfpipe study --rehearse``
    sets it, so a real corpus rehearses at a few dozen clips without rewriting its files."""
    sample_seed: int = 0

    def __post_init__(self) -> None:
        _positive("IngestConfig", files_per_shard=self.files_per_shard)
        if self.sample_per_split is not None and self.sample_per_split < 2:
            raise ConfigError(f"IngestConfig.sample_per_split must be >= 2 (one per label), got {self.sample_per_split}")
        if self.min_duration_s < 0:
            raise ConfigError(f"IngestConfig.min_duration_s must be >= 0, got {self.min_duration_s}")
        options = dict(self.adapter_options)
        for name, value in options.items():
            if not name.isidentifier() or not isinstance(value, str):
                raise ConfigError(f"IngestConfig.adapter_options: {name!r}={value!r} is not a name=string option")
        object.__setattr__(self, "adapter_options", tuple(sorted(options.items())))


@dataclass(frozen=True)
class ManifestConfig:
    """Reading the CSV manifests of ``--format csv``, ``in-the-wild``, ``deepfake-eval-2024``
    and ``hf-parquet`` tables (``dfpipe.corpora._base.manifest_text``)."""

    encoding: str | None = None
    """``--encoding``: a Python codec name (``cp1252``, ``latin-1``, ``utf-16-le``). ``None``:
    the one the file's byte-order mark names (UTF-8, UTF-16, UTF-32), else UTF-8; bytes that
    do not decode stop the run naming the line, the byte offset and an encoding that reads it."""


@dataclass(frozen=True)
class HFParquetConfig:
    """Reading Hugging Face audio Parquet releases and ``path,label`` tables (``--format hf-parquet``)."""

    audio_column: str = "audio"
    """The ``Audio`` column (``struct<bytes, path>``) or a binary column holding each clip's
    encoded file; when a file lacks it, the one column its features declare ``Audio``."""
    path_column: str = "path"
    """For tables without the audio column: the column naming audio files."""
    label_column: str = "label"
    """The column holding the class (a ClassLabel's integer is read as its name)."""
    bonafide_value: str | None = None
    """The one label value meaning bona fide (every other value: spoof). ``None``: labels must
    spell the class out (``bonafide``, ``spoof``, ``real``, ``fake``...)."""
    batch_rows: int = 64
    """Rows per batch when reading a Parquet file: the adapter's planning pass, and the
    streamed read of one embedded clip (:mod:`dfpipe.parquet_source`). Memory per reader is
    about one batch of audio plus one Parquet page."""

    def __post_init__(self) -> None:
        _positive("HFParquetConfig", batch_rows=self.batch_rows)


@dataclass(frozen=True)
class LhotseConfig:
    """Reading and writing lhotse manifests (``--format lhotse``, ``dfpipe export --lhotse``)."""

    label_column: str = "label"
    """The supervisions' ``custom`` key holding the class."""
    bonafide_value: str | None = None
    """As :attr:`HFParquetConfig.bonafide_value`."""
    audio_folder: str = "audio"
    """Under the export folder: where clips stored inside Parquet rows are written as files
    (lhotse reads files, not Parquet rows)."""


@dataclass(frozen=True)
class DaskConfig:
    """Where CPU-parallel stages run: an in-process LocalCluster unless an address is given."""

    address: str | None = None
    n_workers: int | None = None
    """LocalCluster workers (``None``: one per core)."""
    threads_per_worker: int = 1
    in_process_shards: int = 1
    """A stage planned into at most this many shards (score-archive: decode tasks of
    ``ScoreConfig.files_per_task`` files; train and score: their one task) runs them in this
    process on Prefect's thread runner: no LocalCluster to start, no worker to import torch.
    More shards start a LocalCluster; 0 always starts one. An ``address`` always uses its cluster."""

    def __post_init__(self) -> None:
        if self.in_process_shards < 0:
            raise ConfigError(f"DaskConfig: in_process_shards must be >= 0, got {self.in_process_shards}")
        if self.address is not None and self.n_workers is not None:
            raise ConfigError(
                "DaskConfig: give either address (join a cluster) or n_workers (start a "
                f"LocalCluster), not both (address={self.address!r}, n_workers={self.n_workers})"
            )
        _positive("DaskConfig", threads_per_worker=self.threads_per_worker)
        if self.n_workers is not None:
            _positive("DaskConfig", n_workers=self.n_workers)


@dataclass(frozen=True)
class PrefectServerConfig:
    """The local Prefect server of ``dfpipe server start`` (or of the first command that runs a
    flow): ``prefect server start`` on a free loopback port, with its own SQLite database, its
    pid, port and log in ``$PREFECT_HOME/<folder>``."""

    host: str = "127.0.0.1"
    folder: str = "dfpipe-server"
    startup_timeout_s: float = 120.0
    """How long a start waits for ``/api/health`` (about 10-20 s on an idle 2-core machine)."""
    stop_timeout_s: float = 10.0
    """SIGTERM, then SIGKILL after this long, to the server's whole process group."""

    def __post_init__(self) -> None:
        _positive("PrefectServerConfig", startup_timeout_s=self.startup_timeout_s,
                  stop_timeout_s=self.stop_timeout_s)


CPU_MALLOC_KEEP_BYTES = 1 << 30
"""Where torch runs on the CPU, glibc malloc's mmap and trim thresholds are set to this
(:func:`dfpipe.devices.keep_freed_buffers`; 0 leaves malloc alone). By default glibc serves
every allocation above at most 32 MiB by a fresh ``mmap`` and unmaps it when freed, and a
training step allocates and frees activations of tens to hundreds of MB: each is faulted in
page by page again, every step. On 2 cores that was about a third of the CPU time of
``dfpipe demo --quick`` (kernel time), and training ran at half its speed. The cost: up to
this much freed memory stays with the process instead of going back to the system, and
the heap fragments: peak RSS grew 0.05-2.5 GB in ``benchmarks/bench_cpu_malloc.py``.
``$DFPIPE_CPU_MALLOC_KEEP_BYTES`` overrides it (0: glibc's defaults)."""

CPU_MALLOC_KEEP_ENV = "DFPIPE_CPU_MALLOC_KEEP_BYTES"
"""Environment variable overriding :data:`CPU_MALLOC_KEEP_BYTES` (bytes; Dask workers inherit it)."""

METRICS_MEMORY_FRACTION = 0.5
"""Share of physical memory the metric SQL's DuckDB may hold by default (DuckDB's own default
is 80 %, too much beside the Python process and the other stages sharing the machine)."""

_MEMORY_SIZE = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.IGNORECASE)


def default_memory_limit(fraction: float = METRICS_MEMORY_FRACTION) -> str:
    """``fraction`` of this machine's physical memory, as a DuckDB memory size."""
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return f"{int(physical * fraction / 2**20)}MiB"


@dataclass(frozen=True)
class MetricsConfig:
    """Conventions of the metric SQL (``sql/``): threshold and ASVspoof 5 DCF costs, and the
    memory DuckDB may use before it spills to disk."""

    threshold: float = 0.5
    """P(spoof) threshold for the threshold metrics; positive class = spoof. The one decision
    rule (:func:`predicts_spoof`) reads it in SQL, training accuracy, diagnostics and the report."""
    p_spoof: float = 0.05
    c_miss: float = 1.0
    c_fa: float = 10.0
    bootstrap_samples: int = 200
    bootstrap_seed: int = 0
    memory_limit: str = field(default_factory=default_memory_limit)
    """DuckDB ``memory_limit`` of every connection the metrics stage opens (e.g. ``6GB``);
    past it DuckDB spills to ``temp_directory``. Default: :data:`METRICS_MEMORY_FRACTION` of
    physical memory."""
    temp_directory: str = ""
    """Where DuckDB spills. Empty: a fresh folder inside a local lake's root (the lake's
    disk), or in the system temporary folder for a remote lake, removed afterwards."""
    threads: int = 0
    """DuckDB threads of the metric SQL; 0: DuckDB's default (one per core). Each thread
    holds its own buffers, so fewer threads leave more of ``memory_limit`` to the data."""
    epoch_policies: ClassVar[tuple[str, ...]] = ("best_val_eer", "last")
    """How a study table picks the one epoch a run reports (``sql/epoch_policies.sql`` names
    them, ``sql/best_epochs.sql`` applies them): ``best_val_eer`` = lowest EER on the run's
    validation split; ``last`` = the last committed epoch (the study's OOD numbers are at its
    last epoch, and its lesson is not to select on validation). Every table that picks an
    epoch has a row per run per policy, with an ``epoch_policy`` column."""
    reported_epoch_policy: ClassVar[str] = "best_val_eer"
    """The policy the report's figures and ``dfpipe study``'s leaderboard print show."""

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"MetricsConfig.threshold must be in (0, 1), got {self.threshold}")
        if not 0.0 < self.p_spoof < 1.0:
            raise ConfigError(f"MetricsConfig.p_spoof must be in (0, 1), got {self.p_spoof}")
        _positive("MetricsConfig", c_miss=self.c_miss, c_fa=self.c_fa,
                  bootstrap_samples=self.bootstrap_samples)
        if self.threads < 0:
            raise ConfigError(f"MetricsConfig.threads must be >= 0 (0: one per core), got {self.threads}")
        if not _MEMORY_SIZE.match(self.memory_limit):
            raise ConfigError(
                f"MetricsConfig.memory_limit must be a size such as 6GB or 800MiB, got {self.memory_limit!r}")


def spoof_logit_threshold(threshold: float = MetricsConfig.threshold) -> float:
    """The ``spoof_logit`` at which P(spoof) = sigmoid(logit) equals ``threshold``."""
    return math.log(threshold / (1.0 - threshold))


def predicts_spoof(spoof_logit: Any, threshold: float = MetricsConfig.threshold) -> Any:
    """The decision rule: spoof when P(spoof) >= ``threshold`` (ties go to spoof, as in SQL).

    ``spoof_logit`` is a float, a numpy array or a torch tensor; the result has its type
    (booleans). ``sql/threshold_metrics.sql`` applies the same rule to ``p_spoof``.
    """
    return spoof_logit >= spoof_logit_threshold(threshold)


WINDOW_POLICIES = ("centre-crop", "first-n", "windowed-mean", "windowed-max")
"""How a system turns a whole file into one score, as a published record states it: the
centre crop of ``AudioConfig.clip_seconds`` (the lake's predictions,
:func:`dfpipe.frontend.load_clip`), the first N seconds, or the mean / max over windows
(``dfpipe score-archive``'s window columns)."""


@dataclass(frozen=True)
class RecordConfig:
    """Publishable records: ``dfpipe export-scores --record`` and ``dfpipe eval --record``
    (:mod:`dfpipe.publish`, docs/metrics.md)."""

    eer_decimals: int = 4
    """``eer_percent`` is rounded to this many decimals; ``dfpipe eval --record`` rounds the
    recomputed EER the same way and compares the two (so they agree to half a unit of the
    last decimal: 0.00005 percentage points at 4)."""
    window_policy: str = "centre-crop"
    """One of :data:`WINDOW_POLICIES`; the lake's predictions are centre crops."""
    ids: str = "clip_id"
    """Utterance ids of ``scores.txt``: ``clip_id``, or ``path`` (``clips.source_relpath``)."""
    scores_file: str = "scores.txt"
    keys_file: str = "keys.csv"
    record_file: str = "result.yaml"
    hf_folder: str = ".eval_results"

    def __post_init__(self) -> None:
        if self.window_policy not in WINDOW_POLICIES:
            raise ConfigError(f"RecordConfig.window_policy must be one of {WINDOW_POLICIES}, got {self.window_policy!r}")
        if self.ids not in ("clip_id", "path"):
            raise ConfigError(f"RecordConfig.ids must be clip_id or path, got {self.ids!r}")
        if not 0 <= self.eer_decimals <= 10:
            raise ConfigError(f"RecordConfig.eer_decimals must be in 0..10, got {self.eer_decimals}")


DEFAULT_LAKE = "lake"
"""Lake root when neither ``--lake`` nor ``DFPIPE_LAKE`` is given: a local folder or any
fsspec URL (``s3://bucket/lake``)."""


def _range(owner: str, name: str, bounds: tuple[float, float], low: float, high: float) -> None:
    if len(bounds) != 2 or not low <= bounds[0] <= bounds[1] <= high:
        raise ConfigError(f"{owner}.{name} must be (lo, hi) with {low} <= lo <= hi <= {high}, got {bounds!r}")


@dataclass(frozen=True)
class FrontendConfig:
    """The audio front end (``dfpipe.frontend``): log-mel + delta and LFCC, the study's parameters.

    ``version`` (a hash of every field) keys the ``features`` table, so changing any
    parameter makes the features stage recompute instead of mixing two front ends.
    """

    audio: AudioConfig = field(default_factory=AudioConfig)
    n_fft: int = 1024
    hop_length: int = 160
    """10 ms at 16 kHz; with ``center`` a 3 s clip gives 48,000 // 160 + 1 = 301 frames."""
    n_mels: int = 128
    f_min: float = 20.0
    f_max: float = 7600.0
    """Band of both the mel and the LFCC filterbanks (Hz)."""
    power: float = 2.0
    """Power spectrogram (|X|^2), so dB = 10 log10: torchaudio's MelSpectrogram default."""
    top_db: float = 80.0
    amin: float = 1e-10
    """Floor before log10 (torchaudio AmplitudeToDB's own constant, made explicit)."""
    center: bool = True
    pad_mode: str = "reflect"
    """torchaudio's defaults: frames are centred, so frame t describes time t * hop."""
    norm_eps: float = 1e-5
    """Added to the per-sample std so silence (std 0) normalises to 0, not NaN."""
    delta_win_length: int = 5
    lfcc_n_fft: int = 512
    lfcc_win_length: int = 320
    """20 ms windows, 10 ms hop (``hop_length``): the ASVspoof LFCC baseline's framing."""
    lfcc_n_filter: int = 70
    lfcc_n_lfcc: int = 60
    revision: int = 1
    """Bump when front-end code changes its output for the same parameters."""

    def __post_init__(self) -> None:
        _positive("FrontendConfig", n_fft=self.n_fft, hop_length=self.hop_length, n_mels=self.n_mels,
                  power=self.power, top_db=self.top_db, amin=self.amin, norm_eps=self.norm_eps,
                  lfcc_n_fft=self.lfcc_n_fft, lfcc_win_length=self.lfcc_win_length,
                  lfcc_n_filter=self.lfcc_n_filter, lfcc_n_lfcc=self.lfcc_n_lfcc)
        if not 0 <= self.f_min < self.f_max <= self.audio.sample_rate / 2:
            raise ConfigError(
                f"FrontendConfig: need 0 <= f_min < f_max <= Nyquist ({self.audio.sample_rate / 2} Hz), "
                f"got f_min={self.f_min}, f_max={self.f_max}")
        if self.lfcc_win_length > self.lfcc_n_fft:
            raise ConfigError(f"FrontendConfig.lfcc_win_length ({self.lfcc_win_length}) must be <= "
                              f"lfcc_n_fft ({self.lfcc_n_fft})")
        if self.lfcc_n_lfcc > self.lfcc_n_filter:
            raise ConfigError(f"FrontendConfig.lfcc_n_lfcc ({self.lfcc_n_lfcc}) must be <= "
                              f"lfcc_n_filter ({self.lfcc_n_filter})")
        if self.delta_win_length < 3:
            raise ConfigError(f"FrontendConfig.delta_win_length must be >= 3, got {self.delta_win_length}")
        if self.pad_mode not in ("reflect", "constant", "replicate", "circular"):
            raise ConfigError(f"FrontendConfig.pad_mode {self.pad_mode!r} is not a torch pad mode")

    @property
    def n_frames(self) -> int:
        """Frames per clip (301 at the defaults)."""
        samples = self.audio.clip_samples
        return samples // self.hop_length + 1 if self.center else (samples - self.n_fft) // self.hop_length + 1

    @property
    def mel_shape(self) -> tuple[int, int, int]:
        """Per-clip shape of :class:`dfpipe.frontend.MelFrontend`'s output: (2, n_mels, frames)."""
        return (2, self.n_mels, self.n_frames)

    @property
    def lfcc_shape(self) -> tuple[int, int]:
        """Per-clip shape of :class:`dfpipe.frontend.LFCCFrontend`'s output: (n_lfcc, frames)."""
        samples = self.audio.clip_samples
        frames = samples // self.hop_length + 1 if self.center else (
            (samples - self.lfcc_n_fft) // self.hop_length + 1)
        return (self.lfcc_n_lfcc, frames)

    @property
    def version(self) -> str:
        """Stable 16-hex-digit hash of every field: ``features.frontend_version``."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ConditionsConfig:
    """Audio conditions (``dfpipe.conditions``): ffmpeg codecs, corruptions and polish.

    Every clip is decoded to ``audio.sample_rate`` mono before its condition is applied.
    ``corrupt_*`` are the ranges the ``corrupt`` condition draws from (integers, inclusive,
    so each draw is itself a valid single-corruption name such as ``noise_snr12``).
    """

    audio: AudioConfig = field(default_factory=AudioConfig)
    seed: int = 0
    """Base seed; each clip's seed is a hash of (clip_id, condition, seed)."""
    clips_per_shard: int = 16
    corrupt_p: float = 0.5
    """Probability that each corruption joins the ``corrupt`` mix (at least one always does)."""
    corrupt_snr_db: tuple[int, int] = (5, 20)
    corrupt_clip_pct: tuple[int, int] = (10, 50)
    """Clipping level as a percentage of the clip's peak."""
    corrupt_bandlimit_low_hz: tuple[int, int] = (50, 400)
    corrupt_bandlimit_high_hz: tuple[int, int] = (2800, 7000)
    corrupt_resample_hz: tuple[int, ...] = (4000, 8000, 11025)
    """Intermediate rates of the down/up resampling (one is drawn)."""
    corrupt_packetloss_pct: tuple[int, int] = (2, 20)
    packet_ms: int = 20
    """Packet length of ``packetloss_*`` gaps (VoIP frames are 20 ms)."""
    corrupt_reverb_ms: tuple[int, int] = (100, 800)
    """RT60 of the synthetic room impulse response (ms)."""
    reverb_wet: float = 0.5
    """Share of reverberant signal in the ``reverb_*`` mix."""
    polish_loudness_lufs: float = -23.0
    """EBU R128 integrated loudness target of ``polished`` (broadcast: -23 LUFS)."""
    polish_true_peak_db: float = -2.0
    polish_lra_lu: float = 7.0
    polish_highpass_hz: int = 80
    polish_denoise_db: float = 12.0
    """``afftdn`` noise reduction (dB)."""
    polish_compress_threshold_db: float = -20.0
    polish_compress_ratio: float = 3.0
    polish_trim_db: float = -50.0
    """Leading/trailing audio below this level is trimmed."""
    polish_trim_keep_s: float = 0.2
    """Silence kept at each end after trimming (s); pauses inside speech are never touched."""

    def __post_init__(self) -> None:
        owner = "ConditionsConfig"
        _positive(owner, clips_per_shard=self.clips_per_shard, packet_ms=self.packet_ms,
                  polish_highpass_hz=self.polish_highpass_hz, polish_denoise_db=self.polish_denoise_db,
                  polish_compress_ratio=self.polish_compress_ratio, polish_trim_keep_s=self.polish_trim_keep_s)
        if not 0.0 < self.corrupt_p <= 1.0:
            raise ConfigError(f"{owner}.corrupt_p must be in (0, 1], got {self.corrupt_p}")
        if not 0.0 <= self.reverb_wet <= 1.0:
            raise ConfigError(f"{owner}.reverb_wet must be in [0, 1], got {self.reverb_wet}")
        nyquist = self.audio.sample_rate // 2
        _range(owner, "corrupt_snr_db", self.corrupt_snr_db, -20, 80)
        _range(owner, "corrupt_clip_pct", self.corrupt_clip_pct, 1, 99)
        _range(owner, "corrupt_bandlimit_low_hz", self.corrupt_bandlimit_low_hz, 1, nyquist - 1)
        _range(owner, "corrupt_bandlimit_high_hz", self.corrupt_bandlimit_high_hz,
               self.corrupt_bandlimit_low_hz[1] + 1, nyquist - 1)
        _range(owner, "corrupt_packetloss_pct", self.corrupt_packetloss_pct, 1, 99)
        _range(owner, "corrupt_reverb_ms", self.corrupt_reverb_ms, 1, 10_000)
        if not self.corrupt_resample_hz or not all(0 < r < self.audio.sample_rate for r in self.corrupt_resample_hz):
            raise ConfigError(f"{owner}.corrupt_resample_hz must be rates below "
                              f"{self.audio.sample_rate} Hz, got {self.corrupt_resample_hz!r}")
        if not -70.0 < self.polish_loudness_lufs < 0.0:
            raise ConfigError(f"{owner}.polish_loudness_lufs must be in (-70, 0), got {self.polish_loudness_lufs}")


@dataclass(frozen=True)
class FeaturesConfig:
    """The features stage (``dfpipe.features``)."""

    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    clips_per_shard: int = 256
    """Clips per unit of work and per committed Parquet file."""
    batch_size: int = 64
    """Clips per front-end forward pass (and per reader batch)."""
    row_group_size: int = 64
    """Rows per Parquet row group: features rows are ~100 KB, so readers stream."""

    def __post_init__(self) -> None:
        _positive("FeaturesConfig", clips_per_shard=self.clips_per_shard, batch_size=self.batch_size,
                  row_group_size=self.row_group_size)


# -- detectors (dfpipe.models) and their training/scoring ------------------------------------
# Each architecture takes one of these; checkpoints store them as plain dicts
# (dataclasses.asdict) so they load with ``torch.load(weights_only=True)``.

def _probability(owner: str, **values: float) -> None:
    for name, value in values.items():
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"{owner}.{name} must be in [0, 1), got {value!r}")


ALL_BUT_FIRST = "all-but-first"
"""``unfreeze_layers`` value: train every WavLM transformer layer except layer 0 (resolved
against the model's layer count when it is built, :func:`dfpipe.models.wavlm.set_trainable_layers`)."""


def _layer_range(owner: str, layers: tuple[int, int] | str | None) -> None:
    if layers is None or layers == ALL_BUT_FIRST:
        return
    if isinstance(layers, str) or not (len(layers) == 2 and 0 <= layers[0] <= layers[1]):
        raise ConfigError(
            f"{owner}.unfreeze_layers must be None, {ALL_BUT_FIRST!r} or (first, last) with "
            f"0 <= first <= last, got {layers!r}"
        )


def parse_unfreeze_layers(text: str) -> tuple[int, int] | str | None:
    """``unfreeze_layers`` from text: ``none`` (frozen), ``all-but-first`` or ``FIRST,LAST``
    (``dfpipe train --unfreeze``, study files).

    Raises:
        ConfigError: anything else.
    """
    if text == "none":
        return None
    if text == ALL_BUT_FIRST:
        return ALL_BUT_FIRST
    first, sep, last = text.partition(",")
    if not (sep and first.strip().isdigit() and last.strip().isdigit()):
        raise ConfigError(f"unfreeze layers {text!r}: expected none, {ALL_BUT_FIRST} or FIRST,LAST (0-based)")
    return (int(first), int(last))


WAVLM_LARGE = "microsoft/wavlm-large"
"""WavLM-Large, by Hugging Face name (found in the HF cache) or replaced by a local folder."""


@dataclass(frozen=True)
class MelCNNConfig:
    """Mel-CNN: a plain conv stack over (mel, delta mel); ~0.41 M parameters."""

    in_channels: int = 2  # mel + delta
    channels: tuple[int, ...] = (16, 32, 64, 128, 256)
    """One 3x3 conv + BN + ReLU + 2x2 max-pool per entry: 128x301 -> 4x9 after five."""
    embed_dim: int = 64
    dropout: float = 0.3

    def __post_init__(self) -> None:
        _positive("MelCNNConfig", in_channels=self.in_channels, embed_dim=self.embed_dim,
                  blocks=len(self.channels), smallest_channels=min(self.channels, default=0))
        _probability("MelCNNConfig", dropout=self.dropout)


@dataclass(frozen=True)
class MelMultiScaleConfig:
    """Mel-MultiScale ("Mel-AASIST"): 3 multi-scale SE blocks + attentive statistics pooling.

    A 2x2 max-pool of the input and a 3x3 stem conv come before the first block (128x301
    -> 64x151): at full resolution the 5x5 and dilated 7x7 branches cost ~3.5x more CPU
    time; each block then halves both axes again (see dfpipe.models.mel_multiscale).
    """

    in_channels: int = 2
    stem_channels: int = 24
    block_channels: tuple[int, ...] = (24, 96, 192)
    se_reduction: int = 16
    attention_dim: int = 128  # bottleneck of the attentive statistics pooling
    embed_dim: int = 64
    dropout: float = 0.3

    def __post_init__(self) -> None:
        _positive("MelMultiScaleConfig", in_channels=self.in_channels,
                  stem_channels=self.stem_channels, blocks=len(self.block_channels),
                  se_reduction=self.se_reduction, attention_dim=self.attention_dim,
                  embed_dim=self.embed_dim)
        _probability("MelMultiScaleConfig", dropout=self.dropout)


@dataclass(frozen=True)
class MelViTConfig:
    """Mel-ViT: a Vision Transformer over (mel, delta mel), ViT-Small sized by default
    (~21.5 M parameters, ~52x the Mel-CNN; the study reports its ViT at over 100x its CNN).

    The input is cut into ``patch_size`` patches by a strided conv; the time axis is
    zero-padded on the right to a multiple of the patch width (301 -> 304 frames: 8 x 19 =
    152 patches at the defaults) so no frame is dropped. A learned class token and learned
    positional embeddings (one per patch of that fixed grid) go into a pre-norm transformer
    encoder; the class token's final state is the embedding.
    """

    in_channels: int = 2  # mel + delta
    n_mels: int = field(default_factory=lambda: FrontendConfig().n_mels)
    n_frames: int = field(default_factory=lambda: FrontendConfig().n_frames)
    """Input size the positional embeddings are made for (the front end's mel shape)."""
    patch_size: tuple[int, int] = (16, 16)
    """(frequency bins, frames) per patch; ``n_mels`` must be a multiple of the first."""
    embed_dim: int = 384
    depth: int = 12
    heads: int = 6
    mlp_ratio: int = 4
    dropout: float = 0.1
    """Inside the encoder (attention and MLP): ViT's own value; the detectors' 0.3 in each
    of 12 residual blocks would stall training from scratch."""
    head_dropout: float = 0.3
    """On the embedding before ``head``, as the other detectors' ``dropout``."""

    def __post_init__(self) -> None:
        _positive("MelViTConfig", in_channels=self.in_channels, n_mels=self.n_mels, n_frames=self.n_frames,
                  patch_height=self.patch_size[0], patch_width=self.patch_size[-1],
                  embed_dim=self.embed_dim, depth=self.depth, heads=self.heads, mlp_ratio=self.mlp_ratio)
        _probability("MelViTConfig", dropout=self.dropout, head_dropout=self.head_dropout)
        if len(self.patch_size) != 2 or self.n_mels % self.patch_size[0]:
            raise ConfigError(f"MelViTConfig.patch_size must be (height, width) with n_mels ({self.n_mels}) "
                              f"a multiple of height, got {self.patch_size!r}")
        if self.embed_dim % self.heads:
            raise ConfigError(f"MelViTConfig.embed_dim ({self.embed_dim}) must be a multiple of heads ({self.heads})")

    @property
    def grid(self) -> tuple[int, int]:
        """Patches along (frequency, time), the time axis padded up to whole patches."""
        return self.n_mels // self.patch_size[0], -(-self.n_frames // self.patch_size[1])


@dataclass(frozen=True)
class WavLMCNNConfig:
    """WavLM + CNN: frozen WavLM features, projected to ``feature_bins`` and fed to a Mel-CNN
    style conv stack as a 1-channel image (bins x frames)."""

    wavlm: str = WAVLM_LARGE
    unfreeze_layers: tuple[int, int] | str | None = None
    """Inclusive 0-based range of transformer layers to train, or :data:`ALL_BUT_FIRST`;
    ``None`` = fully frozen."""
    feature_bins: int = 128
    head: MelCNNConfig = field(default_factory=lambda: MelCNNConfig(in_channels=1))

    def __post_init__(self) -> None:
        _positive("WavLMCNNConfig", feature_bins=self.feature_bins)
        _layer_range("WavLMCNNConfig", self.unfreeze_layers)


@dataclass(frozen=True)
class WavLMAASISTConfig:
    """WavLM + AASIST: three fused streams (WavLM, mel multi-scale encoder, LFCC)."""

    wavlm: str = WAVLM_LARGE
    unfreeze_layers: tuple[int, int] | str | None = (12, 23)  # the study: upper half of WavLM-Large
    wavlm_dim: int = 256  # WavLM frames projected to this, then averaged over time
    mel: MelMultiScaleConfig = field(default_factory=MelMultiScaleConfig)
    lfcc_coefficients: int = field(default_factory=lambda: FrontendConfig().lfcc_n_lfcc)
    """Rows of the ``features.lfcc`` input (the front end's ``lfcc_n_lfcc``)."""
    lfcc_channels: int = 64  # 1-D conv width of the LFCC stream
    fusion_hidden: int = 256
    embed_dim: int = 64
    dropout: float = 0.3

    def __post_init__(self) -> None:
        _positive("WavLMAASISTConfig", wavlm_dim=self.wavlm_dim, lfcc_channels=self.lfcc_channels,
                  lfcc_coefficients=self.lfcc_coefficients,
                  fusion_hidden=self.fusion_hidden, embed_dim=self.embed_dim)
        _probability("WavLMAASISTConfig", dropout=self.dropout)
        _layer_range("WavLMAASISTConfig", self.unfreeze_layers)


@dataclass(frozen=True)
class StreamConfig:
    """Streaming clips from the lake through a detector (:func:`dfpipe.clipsets.stream_batches`),
    for training and ``dfpipe score``: what bounds their memory, whatever the corpus size.

    Clips are read in units (one Parquet row group, at most ``unit_clips`` clips); the inputs
    resident at once are about ``shuffle_buffer + (prefetch + workers + 1) * unit_clips`` clips
    plus a few batches (a mel + LFCC clip is ~190 KB as float16, a waveform ~192 KB as float32),
    whatever the corpus size; the clip index adds ~100 bytes per clip.
    """

    shuffle_buffer: int = 2048
    """Training: clips gathered (from units in a seeded order) and shuffled together before
    they are cut into batches; ~0.3 GB of mel (float16) at the default, ~0.4 GB with LFCC and
    waveforms. Part of the run's identity (it changes the batch order)."""
    unit_clips: int = 64
    """Clips per read unit (the features stage writes 64-row groups); a larger row group is
    read in slices of this many clips. Part of the run's identity, like ``shuffle_buffer``."""
    workers: int = 2
    """Threads reading and decoding units ahead of the model (Arrow, zstd and the audio
    decoder release the GIL; threads, not processes, since a Dask worker may not fork). The
    order of units never depends on it, so results do not either. 0: read in the caller."""
    prefetch: int = 4
    """Units read ahead of the one being consumed."""
    predictions_per_shard: int = 100_000
    """``predictions`` rows per committed shard of one (run, epoch, dataset)."""

    def __post_init__(self) -> None:
        _positive("StreamConfig", shuffle_buffer=self.shuffle_buffer, unit_clips=self.unit_clips,
                  prefetch=self.prefetch, predictions_per_shard=self.predictions_per_shard)
        if self.workers < 0:
            raise ConfigError(f"StreamConfig.workers must be >= 0, got {self.workers}")


@dataclass(frozen=True)
class AmpConfig:
    """Mixed precision per device type (:func:`dfpipe.devices.select_device`): the autocast
    dtype, or ``off`` (float32). ``float16`` comes with loss scaling (a ``GradScaler``);
    ``bfloat16`` has float32's range and needs none.

    CUDA: float16 (tensor cores on every GPU since Volta; ``bfloat16`` on Ampere and newer).
    CPU: off unless asked for. bfloat16 autocast ran a Mel-CNN train step about 2x faster on a
    CPU with AVX-512 BF16 (docs/models.md), but CPUs without it run it slower than float32,
    and float32 keeps CPU runs (the demo, the tests) the reference numerics.
    """

    cuda: str = "float16"
    cpu: str = "off"

    DTYPES: ClassVar[tuple[str, ...]] = ("float16", "bfloat16", "off")

    def __post_init__(self) -> None:
        for device_type in ("cuda", "cpu"):
            if getattr(self, device_type) not in self.DTYPES:
                raise ConfigError(f"AmpConfig.{device_type} must be one of {self.DTYPES}, "
                                  f"got {getattr(self, device_type)!r}")

    def dtype_for(self, device_type: str) -> str:
        """The autocast dtype name on ``device_type`` (``cuda``/``cpu``; others: ``off``)."""
        return getattr(self, device_type) if device_type in ("cuda", "cpu") else "off"


@dataclass(frozen=True)
class TrainConfig:
    """How a detector is trained (the study's recipe); see dfpipe.train.

    Batch size and epochs depend on the architecture family; ``None`` picks the study's
    value for it (:meth:`batch_size_for`, :meth:`epochs_for`).
    """

    lr: float = 5e-5
    weight_decay: float = 0.01
    batch_size: int | None = None
    epochs: int | None = None
    val_fraction: float = 0.05  # stratified by label, from the train split
    grad_clip: float = 1.0  # max global L2 norm
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # mixed precision at amp_dtypes (CUDA float16 + GradScaler; CPU off by default)
    cpu_threads: int | None = None
    """Torch threads on the CPU; ``None``: every core (Dask workers start torch with one)."""
    default_condition: str = RAW_CONDITION  # data specs without :CONDITION: the ingested files as they are
    default_train_split: str = "train"  # train spec without @SPLIT
    eval_batch_size: int = 256
    balance: str | None = None
    """Class balancing of the train data (one of :data:`BALANCE_MODES`): ``undersample``
    draws the majority class down to the minority's count (seeded, on clip ids, before
    anything is loaded; :func:`dfpipe.clipsets.load_balanced_clip_set`); ``weight`` weighs
    the spoof loss by n_bonafide / n_spoof (BCE ``pos_weight``). ``None``: as the data is."""
    init_from: str | None = None
    """A model checkpoint (``epoch-NNN.pt`` URI) whose weights start the run (warm start;
    the optimiser starts fresh). Its run id and epoch are part of the new run's identity."""
    stream: StreamConfig = field(default_factory=StreamConfig)
    """Reading the train, val and eval clips from the lake (shuffle buffer, reader threads)."""
    amp_dtypes: AmpConfig = field(default_factory=AmpConfig)
    """The autocast dtype per device type when ``amp`` (CPU: off unless set)."""
    eval_every: dict[str, int] = field(default_factory=dict)
    """Eval sets (by dataset name) scored every N epochs, not every one: at epochs N, 2N, ...
    and always at the run's last (a study's ``every: N``); ``val`` and the sets not named are
    scored every epoch. Not part of the run's identity: it changes when a set is scored, not
    what is trained."""

    BALANCE_MODES = ("undersample", "weight")
    MEL_BATCH = 128
    WAVLM_BATCH = 64
    MEL_EPOCHS = 50
    WAVLM_EPOCHS = 15

    def __post_init__(self) -> None:
        _positive("TrainConfig", lr=self.lr, grad_clip=self.grad_clip,
                  eval_batch_size=self.eval_batch_size)
        if self.weight_decay < 0:
            raise ConfigError(f"TrainConfig.weight_decay must be >= 0, got {self.weight_decay}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"TrainConfig.val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.balance is not None and self.balance not in self.BALANCE_MODES:
            raise ConfigError(f"TrainConfig.balance must be one of {self.BALANCE_MODES} or None, got {self.balance!r}")
        for name in ("batch_size", "epochs"):
            value = getattr(self, name)
            if value is not None:
                _positive("TrainConfig", **{name: value})
        for dataset, every in self.eval_every.items():
            if not isinstance(every, int) or every < 1:
                raise ConfigError(f"TrainConfig.eval_every[{dataset!r}] must be an integer >= 1, got {every!r}")

    def batch_size_for(self, arch: str) -> int:
        return self.batch_size or (self.WAVLM_BATCH if arch.startswith("wavlm") else self.MEL_BATCH)

    def epochs_for(self, arch: str) -> int:
        return self.epochs or (self.WAVLM_EPOCHS if arch.startswith("wavlm") else self.MEL_EPOCHS)


@dataclass(frozen=True)
class ScoreConfig:
    """Scoring: the lake's clips (dfpipe.score.score) and raw archives (dfpipe.archive_scoring)."""

    batch_size: int = 64  # clips (or windows) per forward pass
    device: str = "auto"
    amp: bool = True  # mixed precision at amp_dtypes (CPU off by default)
    cpu_threads: int | None = None  # None: every core
    hop_s: float = 1.5  # window hop over whole files; windows are AudioConfig.clip_seconds long
    files_per_task: int = 8  # files decoded per Dask task
    max_in_flight: int = 8  # decode tasks submitted but not yet consumed (bounds memory)
    files_per_part: int = 256  # scored files per output Parquet part (unit of resume)
    stream: StreamConfig = field(default_factory=StreamConfig)
    """Reading lake clips for ``dfpipe score`` (reader threads; no shuffle) and writing predictions."""
    amp_dtypes: AmpConfig = field(default_factory=AmpConfig)
    """The autocast dtype per device type when ``amp``."""
    min_duration_s: float = field(default_factory=lambda: IngestConfig().min_duration_s)
    """Archive files shorter than this are rejected (``too_short``), as ingest rejects them."""
    max_in_memory_s: float = 300.0
    """A file decoding to more than this is not held whole (19 MB of 16 kHz float32 here, its
    windows twice that): the worker only counts its samples, then this process decodes it
    again and scores its windows as they stream, a batch at a time (memory: one batch)."""
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    """The decoder sandbox and signal checks applied to every archive file."""

    def __post_init__(self) -> None:
        _positive("ScoreConfig", batch_size=self.batch_size, hop_s=self.hop_s,
                  files_per_task=self.files_per_task, max_in_flight=self.max_in_flight,
                  files_per_part=self.files_per_part, max_in_memory_s=self.max_in_memory_s)



@dataclass(frozen=True)
class DemoCorpusConfig:
    """The built-in demo corpus (``dfpipe corpus build-demo``): sizes, channel, splits.

    Both classes go through one channel (:mod:`dfpipe.corpora.demo.channel`), so the
    numbers below are the only "recording conditions" in the corpus and none carries the
    label. The shortcut check (``dfpipe corpus check``) verifies that.
    """

    seed: int = 0
    small_per_class: tuple[int, int, int] = (60, 20, 20)
    """Bona fide clips per split (train, test, ood) of ``--size small``; as many spoofs
    again, so about 200 clips: enough for the end-to-end tests, built in well under 2 min."""
    test_fraction: float = 0.2
    """Share of each in-distribution bona fide speaker's recordings held out as ``test``."""
    ood_speakers: tuple[str, ...] = ("it_IT_m_Carlo", "pocketsphinx")
    """Bona fide speakers (or source prefixes) kept out of train/test: the ``ood`` split."""
    ood_family: str = "neural"
    """Spoof family kept out of train/test (Piper VITS): the ``ood`` split's spoofs."""
    ood_languages: tuple[str, ...] = ("it",)
    """Languages only ``ood`` bona fide speaks: their voices (Festival's Italian diphones) are
    ood spoofs too, voices and a language never trained on."""
    ood_native_share: float = 0.5
    """Share of the ood bona fide recordings in an ``ood_languages`` language whose spoof twin
    reads that language; the others are twinned with the neural family (English only), so
    language is only a partial cue inside ``ood``."""
    min_speech_s: float = 1.5
    """Sources with less speech than this are dropped as unusable (single digits, letters):
    a 3 s front-end clip of them would be mostly zero padding."""
    silence_floor_dbfs: float = -50.0
    """Frames quieter than this are silence; a source with no louder frame is non-speech."""
    trim_below_peak_db: float = 35.0
    """Silence trimming keeps from the first to the last 20 ms frame within this many dB of
    the loudest frame."""
    tonal_peak_ratio: float = 0.985
    """A source whose median active frame holds more than this share of its energy in one
    spectral peak is a beep, tone or chime, not speech (those measure 0.99-1.0; sustained
    vowels of single-word prompts reach 0.97)."""
    duration_range_s: tuple[float, float] = (2.0, 4.0)
    """Each bona fide clip and its spoof twin are cut to one length: the shorter of the two
    trimmed recordings, at most a length drawn from this range; duration carries no label."""
    band_hz: tuple[float, float] = (80.0, 7000.0)
    """Shared pass band (Hz), inside G.722's 50-7,000 Hz, applied to both classes after the
    shared G.722 round trip (the bona fide prompts are G.722 recordings)."""
    rms_dbfs_range: tuple[float, float] = (-30.0, -20.0)
    """Loudness: each clip's speech RMS is set to a level drawn from this range."""
    crest_db_range: tuple[float, float] = (10.0, 14.0)
    """Peak limiter: after loudness normalisation a smooth-gain limiter keeps every sample
    within a drawn number of dB (this range) of the clip's RMS. TTS waveforms are peakier
    than the prompts (formant pulses); capping the crest factor for both classes erases
    that, and drawing the cap makes the peak level vary for reasons unrelated to the label."""
    ltas_knee_hz: float = 500.0
    ltas_slope_range_db_per_octave: tuple[float, float] = (-9.0, -6.0)
    """Spectral equaliser target: each clip's long-term average spectrum is equalised to
    flat below the knee and a drawn slope (this range) above it (typical speech LTAS), so
    spectral tilt and roll-off (bright formant TTS vs warm studio prompts) carry no label."""
    eq_max_gain_db: float = 30.0
    """The equaliser's gain is limited to +- this many dB per band."""
    mp3_share: float = 0.5
    """Share of clips (of either class, by seeded draw) that go through an MP3 round trip."""
    mp3_bitrates_kbps: tuple[int, ...] = (32, 64, 96)
    clips_per_shard: int = 24
    """Unit of parallel work: one Dask task renders this many clips."""
    shortcut_min_eer: float = 0.40
    """``dfpipe corpus check`` fails when the cheap-feature classifier's EER on test or
    ood falls below this (0.5 = chance): the channel then leaks the label."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.ood_native_share <= 1.0:
            raise ConfigError(f"DemoCorpusConfig.ood_native_share must be in [0, 1], got {self.ood_native_share}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"DemoCorpusConfig.test_fraction must be in (0, 1), got {self.test_fraction}")
        if not 0.0 <= self.mp3_share <= 1.0:
            raise ConfigError(f"DemoCorpusConfig.mp3_share must be in [0, 1], got {self.mp3_share}")
        low, high = self.duration_range_s
        if not 0 < self.min_speech_s <= low <= high:
            raise ConfigError(
                "DemoCorpusConfig: need 0 < min_speech_s <= duration_range_s[0] <= duration_range_s[1], "
                f"got min_speech_s={self.min_speech_s}, duration_range_s={self.duration_range_s}"
            )
        if not 0 < self.band_hz[0] < self.band_hz[1]:
            raise ConfigError(f"DemoCorpusConfig.band_hz must be 0 < low < high, got {self.band_hz}")
        _positive("DemoCorpusConfig", clips_per_shard=self.clips_per_shard,
                  trim_below_peak_db=self.trim_below_peak_db)
        if any(n < 1 for n in self.small_per_class):
            raise ConfigError(f"DemoCorpusConfig.small_per_class must be >= 1 each, got {self.small_per_class}")


STANDIN_RELEASES = ("asvspoof5", "in-the-wild", "deepfake-eval-2024", "folder")
"""Releases ``dfpipe corpus build-standin --like`` can imitate (their ``--format`` names)."""


@dataclass(frozen=True)
class StandinConfig:
    """Stand-in corpora (``dfpipe corpus build-standin``): a release's layout, demo audio.

    A stand-in checks a study's plumbing before the real corpus is at hand; it says nothing
    about detection (the audio is the demo corpus').
    """

    n: int = 40
    """Clips per protocol file / split (ASVspoof5 train, dev, eval; folder train, test) or
    in the whole corpus (In-the-Wild, Deepfake-Eval-2024)."""
    seed: int = 0
    asvspoof5_bonafide_share: float = 0.1
    """ASVspoof5 train is about 1 bona fide to 9 spoof (dev and eval too), so balancing matters."""
    gain_db_range: tuple[float, float] = (-3.0, 0.0)
    """Each file gets its own drawn gain: a demo clip reused in two files then has two
    contents (ingest deduplicates by content)."""
    enrolment_per_speaker: int = 3
    """ASVspoof5 Track 2: enrolment files per target speaker."""

    def __post_init__(self) -> None:
        if self.n < 4:
            raise ConfigError(f"StandinConfig.n must be >= 4 (bona fide and spoof in each part), got {self.n}")
        if not 0.0 < self.asvspoof5_bonafide_share < 1.0:
            raise ConfigError("StandinConfig.asvspoof5_bonafide_share must be in (0, 1), "
                              f"got {self.asvspoof5_bonafide_share}")
        _positive("StandinConfig", enrolment_per_speaker=self.enrolment_per_speaker)
        if not self.gain_db_range[0] <= self.gain_db_range[1] <= 0:
            raise ConfigError(f"StandinConfig.gain_db_range must be (lo, hi) with lo <= hi <= 0, "
                              f"got {self.gain_db_range}")


@dataclass(frozen=True)
class RehearsalConfig:
    """``dfpipe study --rehearse``: every run of a study at a scale a laptop runs in minutes.

    Checks the study end to end (files, conditions, every run and warm start, every table)
    before GPUs are booked; the numbers it produces mean nothing.
    """

    epochs: int = 1
    clips_per_split: int = 24
    """Each corpus is ingested at this many clips per split (:attr:`IngestConfig.sample_per_split`)."""
    batch_size: int = 8
    seed: int = 0
    wavlm_hidden_size: int = 32
    wavlm_heads: int = 2
    wavlm_intermediate_size: int = 64
    wavlm_conv_dim: int = 32
    """The random WavLM standing in for WavLM-Large: its architecture flags and its 24 layers
    (so every ``unfreeze_layers`` range of a study stays valid), these widths."""

    def __post_init__(self) -> None:
        _positive("RehearsalConfig", epochs=self.epochs, batch_size=self.batch_size,
                  wavlm_hidden_size=self.wavlm_hidden_size, wavlm_heads=self.wavlm_heads,
                  wavlm_intermediate_size=self.wavlm_intermediate_size, wavlm_conv_dim=self.wavlm_conv_dim)
        if self.clips_per_split < 4:
            raise ConfigError(f"RehearsalConfig.clips_per_split must be >= 4 (a validation clip of each label "
                              f"and training clips), got {self.clips_per_split}")


@dataclass(frozen=True)
class DiagnosticsConfig:
    """Loss-landscape diagnostics of a checkpoint (``dfpipe.diagnostics``; docs/study.md).

    The holdout is ``per_class`` spoof + ``per_class`` bona fide clips drawn with ``seed``;
    the train-split sample for the generalisation gap is drawn the same way.
    """

    per_class: int = 50  # the study: 50 AI + 50 human clips; >= 2 (Davies-Bouldin needs a cluster of 2)
    draws: int = 30  # Hutchinson Rademacher draws per clip
    ece_bins: int = 15  # equal-width confidence bins (Guo et al. 2017)
    bands: tuple[float, float] = (0.001, 0.01)
    """Trace ÷ parameters cut points: below flat, between moderate, above sharp (the study)."""
    scales: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1)
    """Local-linearity step lengths, relative to the total trainable weight norm."""
    directions: int = 8  # random unit weight directions of the local-linearity check
    batch_size: int = 8  # clips per forward pass of the no-gradient passes (bounded memory)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N; diagnostics run in float32, no AMP

    def __post_init__(self) -> None:
        _positive("DiagnosticsConfig", draws=self.draws, ece_bins=self.ece_bins,
                  directions=self.directions, batch_size=self.batch_size)
        if self.per_class < 2:
            raise ConfigError(f"DiagnosticsConfig.per_class must be >= 2, got {self.per_class}")
        if len(self.bands) != 2 or not 0 < self.bands[0] < self.bands[1]:
            raise ConfigError(f"DiagnosticsConfig.bands must be (flat_below, sharp_above) with "
                              f"0 < flat_below < sharp_above, got {self.bands!r}")
        if not self.scales or not all(s > 0 for s in self.scales):
            raise ConfigError(f"DiagnosticsConfig.scales must be positive, got {self.scales!r}")


def cache_dir() -> Path:
    """dfpipe's cache folder (built demo corpora): ``$DFPIPE_CACHE``, else ``~/.cache/dfpipe``."""
    return Path(os.environ.get("DFPIPE_CACHE") or Path.home() / ".cache" / "dfpipe")


def demo_corpus_dir(size: str, seed: int) -> Path:
    """Where the demo study and the tests build the demo corpus of this size and seed."""
    return cache_dir() / f"demo-{size}-seed{seed}"


# -- calibration, fusion, detection and the shipped detector (dfpipe.llr, dfpipe.calibration) --
def effective_spoof_prior(p_spoof: float = MetricsConfig.p_spoof, c_miss: float = MetricsConfig.c_miss,
                          c_fa: float = MetricsConfig.c_fa) -> float:
    """The one prior that carries the DCF's costs (the effective prior of BOSARIS, of spoof):
    ``c_fa p / (c_fa p + c_miss (1 - p))``, 0.345 at the ASVspoof 5 costs (p 0.05, c_miss 1,
    c_fa 10). Deciding spoof when the LLR exceeds ``-logit`` of it is the Bayes decision at
    those costs (:attr:`CalibrationConfig.bayes_threshold`)."""
    return c_fa * p_spoof / (c_fa * p_spoof + c_miss * (1.0 - p_spoof))


@dataclass(frozen=True)
class CalibrationConfig:
    """Calibration and fusion of scores into log-likelihood ratios (``dfpipe calibrate``/``fuse``).

    A prior-weighted logistic regression (BOSARIS' ``train_binary_classifier``, the ASVspoof
    practice) maps scores to a spoof LLR ``w . s + b``: each class weighs ``prior`` (spoof)
    and ``1 - prior`` (bona fide) in the loss whatever its count, and ``logit(prior)`` is
    taken off the fitted log-odds, so the result is an LLR, not a posterior at the dev set's
    class balance.
    """

    prior: float = effective_spoof_prior()
    """Spoof prior of the fit's loss: the effective prior of :class:`MetricsConfig`'s costs,
    so the fit minimises the cost actDCF measures."""
    inverse_regularisation: float = 100.0
    """scikit-learn's ``C``: weak L2 on the weights, so a dev set the scores separate
    perfectly (the small demo's val split often is) still gets a finite slope."""
    max_iter: int = 1000  # lbfgs iterations of the logistic regression
    tol: float = 1e-10
    """lbfgs stopping tolerance: scikit-learn's 1e-4 leaves the slope ~1e-3 off the optimum;
    a 1-3 parameter fit to 1e-10 costs milliseconds."""
    file_suffix: str = ".calibration.json"
    """Beside ``epoch-NNN.pt``: ``epoch-NNN.calibration.json`` (the last calibration fitted)."""
    fusion_prefix: str = "fusion-"
    """run_id prefix of the pseudo-run a fusion writes into ``predictions`` (epoch 0)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.prior < 1.0:
            raise ConfigError(f"CalibrationConfig.prior must be in (0, 1), got {self.prior}")
        _positive("CalibrationConfig", max_iter=self.max_iter, inverse_regularisation=self.inverse_regularisation,
                  tol=self.tol)

    @property
    def bayes_threshold(self) -> float:
        """The spoof-LLR threshold of the Bayes decision at ``prior``: ``ln((1 - prior) / prior)``
        (= ln(c_miss (1 - p) / (c_fa p)) = ln 1.9 at the ASVspoof 5 costs; on the ASVspoof
        cm-score, higher = bona fide, it is their ``-ln beta``)."""
        return math.log((1.0 - self.prior) / self.prior)


@dataclass(frozen=True)
class DefaultDetectorConfig:
    """The detector shipped inside the package (``dfpipe detect``, ``score-archive`` without
    ``--checkpoint``) and the recipe that trains it (``dfpipe train-default``)."""

    package_folder: str = "pretrained"
    """``dfpipe/pretrained/`` (package data): the checkpoint and its calibration."""
    checkpoint_name: str = "default-detector.pt"
    metrics_name: str = "default-detector.metrics.json"  # the model card's figures, beside it
    archs: tuple[str, ...] = ("mel-cnn", "mel-multiscale")
    """Both mel detectors are trained; the one with the lower EER on the built-in OOD split ships."""
    corpus_size: str = "full"
    corpus_seed: int = 0
    epochs: int = 24
    """Sized for two CPU cores (the shipped model was trained so): the study's 50 epochs at lr
    5e-5 and batch 128 are about 500 optimiser steps on the built-in corpus' 1,248 training
    clips (train less val), too few at that rate; 24 epochs at batch 32 and lr 3e-4 are about
    940."""
    epochs_by_arch: dict[str, int] = field(default_factory=lambda: {"mel-multiscale": 6})
    """Per-arch overrides of ``epochs``. Mel-MultiScale costs about 4x Mel-CNN per clip on a
    CPU: a quarter of the epochs gives both about the same training time (the comparison the
    recipe makes is at equal compute, not equal epochs). On a GPU, give both ``epochs``."""
    lr: float = 3e-4
    batch_size: int | None = 32  # None: TrainConfig's mel batch (128)
    val_fraction: float = 0.2
    """Larger than training's 5 %: the val split is also the calibration's dev set."""
    selection_dataset: str = "ood"  # the built-in split of families and speakers never trained on
    test_dataset: str = "test"
    held_out_every: int = 4
    """test and ood are scored every this many epochs (and at the last): the model card reports
    the last epoch, and scoring both every epoch would cost a third of the training time."""

    def epochs_for(self, arch: str) -> int:
        return self.epochs_by_arch.get(arch, self.epochs)

    def __post_init__(self) -> None:
        _positive("DefaultDetectorConfig", epochs=self.epochs, lr=self.lr, held_out_every=self.held_out_every,
                  **{f"epochs_by_arch[{arch}]": n for arch, n in self.epochs_by_arch.items()})
        if not self.archs or any(not arch.startswith("mel-") for arch in self.archs):
            raise ConfigError(f"DefaultDetectorConfig.archs must be mel detectors, got {self.archs!r}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"DefaultDetectorConfig.val_fraction must be in (0, 1), got {self.val_fraction}")


@dataclass(frozen=True)
class OnnxConfig:
    """``dfpipe export --onnx``: the mel detectors as one ONNX graph, front end included."""

    opset: int = 17  # the first opset with the ops the graph needs everywhere (onnxruntime >= 1.14)
    parity_atol: float = 1e-3
    """Largest |logit difference| the export accepts against PyTorch on the same clips (the
    graph's DFT is a float32 matrix product, PyTorch's an FFT: ~1e-5 apart in practice)."""

    def __post_init__(self) -> None:
        _positive("OnnxConfig", opset=self.opset, parity_atol=self.parity_atol)
