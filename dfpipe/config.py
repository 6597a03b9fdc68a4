"""Every default dfpipe uses, in one place.

Each stage takes one of these frozen dataclasses; the CLI, the flows, the benchmarks and the
tests read them instead of repeating literals. A bad or conflicting value fails when the
object is built (``__post_init__``), naming the field.

The numbers follow ../shared/SPEC.md (the study being reproduced); where a number is ours,
the comment says why.
"""

from __future__ import annotations

from dataclasses import dataclass

from dfpipe.errors import ConfigError

LABELS = ("bonafide", "spoof")
"""The two classes, in the spelling of the ASVspoof key files."""

SPLITS = ("train", "dev", "test", "ood", "eval")
"""Split names a corpus adapter may emit (``None`` when the corpus does not say)."""


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
class IngestConfig:
    """Probing raw corpora into the ``clips`` table."""

    files_per_shard: int = 64
    """Unit of parallel work and of commit: each shard is probed by one worker and written
    as one Parquet file, so a killed run loses at most the shards in flight."""
    allow_outside_root: bool = False
    """Manifests may not point outside the corpus root unless this is set (security)."""
    min_duration_s: float = 0.1
    """Shorter audio is rejected as empty: no front end can make a clip of it."""

    def __post_init__(self) -> None:
        _positive("IngestConfig", files_per_shard=self.files_per_shard)
        if self.min_duration_s < 0:
            raise ConfigError(f"IngestConfig.min_duration_s must be >= 0, got {self.min_duration_s}")


@dataclass(frozen=True)
class DaskConfig:
    """Where CPU-parallel stages run: an in-process LocalCluster unless an address is given."""

    address: str | None = None
    n_workers: int | None = None
    """LocalCluster workers (``None``: one per core)."""
    threads_per_worker: int = 1

    def __post_init__(self) -> None:
        if self.address is not None and self.n_workers is not None:
            raise ConfigError(
                "DaskConfig: give either address (join a cluster) or n_workers (start a "
                f"LocalCluster), not both (address={self.address!r}, n_workers={self.n_workers})"
            )
        _positive("DaskConfig", threads_per_worker=self.threads_per_worker)
        if self.n_workers is not None:
            _positive("DaskConfig", n_workers=self.n_workers)


@dataclass(frozen=True)
class MetricsConfig:
    """Conventions of the metric SQL (``sql/``): threshold and ASVspoof 5 DCF costs."""

    threshold: float = 0.5
    """P(spoof) threshold for the threshold metrics; positive class = spoof."""
    p_spoof: float = 0.05
    c_miss: float = 1.0
    c_fa: float = 10.0
    bootstrap_samples: int = 200
    bootstrap_seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"MetricsConfig.threshold must be in (0, 1), got {self.threshold}")
        if not 0.0 < self.p_spoof < 1.0:
            raise ConfigError(f"MetricsConfig.p_spoof must be in (0, 1), got {self.p_spoof}")
        _positive("MetricsConfig", c_miss=self.c_miss, c_fa=self.c_fa,
                  bootstrap_samples=self.bootstrap_samples)


DEFAULT_LAKE = "lake"
"""Lake root when neither ``--lake`` nor ``DFPIPE_LAKE`` is given: a local folder or any
fsspec URL (``s3://bucket/lake``)."""
