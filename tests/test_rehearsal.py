"""``dfpipe study --rehearse``: the scaled-down study, the ingest cap, the stand-in WavLM."""

from __future__ import annotations

from pathlib import Path

import pytest

from dfpipe.config import IngestConfig, RehearsalConfig, StandinConfig
from dfpipe.corpora.standin import build_standin
from dfpipe.ingest import corpus_entries
from dfpipe.study import load_study, plan_study
from dfpipe.study.rehearsal import rehearsal_wavlm, rehearse

SEED_STUDY = Path(__file__).resolve().parents[1] / "studies" / "seed-study.yaml"
SEED_STUDY_ENV = ("CUSTOM_CORPUS", "CUSTOM_CORPUS_LARGE", "ASVSPOOF5", "DFEVAL2024", "WAVLM_LARGE")
"""Every ``${VAR}`` of studies/seed-study.yaml (load_study refuses an unset one)."""


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DFPIPE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_rehearsal_keeps_the_matrix_and_scales_every_run_down(tmp_path, monkeypatch, cache):
    for name in SEED_STUDY_ENV:
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    study = load_study(SEED_STUDY)
    rehearsal = rehearse(study)
    full, small = plan_study(study), plan_study(rehearsal.study)
    assert [(r.name, r.model) for r in small.runs] == [(r.name, r.model) for r in full.runs]
    assert (small.corpora, small.conditions, small.features) == (full.corpora, full.conditions, full.features)
    config = RehearsalConfig()
    assert {r.epochs for r in small.runs} == {config.epochs}
    assert {rehearsal.study.train_config(r, "x" if r.init_from else None).batch_size for r in small.runs} == {
        config.batch_size}
    # a warm start from a named epoch starts from the source's only epoch
    assert [r.init_from[1] for r in small.runs if r.init_from] == [config.epochs] * sum(
        1 for r in full.runs if r.init_from)
    assert rehearsal.ingest == IngestConfig(sample_per_split=config.clips_per_split, sample_seed=config.seed)
    assert Path(rehearsal.study.wavlm_path).parent == cache
    text = "\n".join(rehearsal.scaled)
    assert "epochs: every run 1" in text and "custom_clean@wavlm-cnn@17 -> custom_clean@wavlm-cnn" in text
    assert f"at most {config.clips_per_split} clips per split" in text and "WavLM" in text


def test_the_stand_in_wavlm_has_wavlm_large_flags_and_layers_and_loads_offline(cache):
    from dfpipe.models.wavlm import load_wavlm, wavlm_large_config

    folder = rehearsal_wavlm(RehearsalConfig())
    assert rehearsal_wavlm(RehearsalConfig()) == folder  # built once
    wavlm = load_wavlm(str(folder))
    large = wavlm_large_config()
    assert len(wavlm.encoder.layers) == large.num_hidden_layers == 24
    assert (wavlm.config.feat_extract_norm, wavlm.config.do_stable_layer_norm) == (
        large.feat_extract_norm, large.do_stable_layer_norm)
    assert wavlm.config.hidden_size == RehearsalConfig().wavlm_hidden_size
    assert [p.name for p in cache.iterdir()] == [folder.name]  # no temporary folder left


def test_the_ingest_cap_keeps_each_splits_label_shares(demo_corpus_small, tmp_path):
    root = build_standin("asvspoof5", tmp_path / "asv5", demo_corpus_small, StandinConfig(n=40)).root
    cap = IngestConfig(sample_per_split=10)
    items = list(corpus_entries("asvspoof5", root, cap))
    counts = {(i.split, i.label): 0 for i in items}
    for item in items:
        counts[item.split, item.label] += 1
    # 4 bona fide : 36 spoof per split -> 1 : 9 of 10
    assert counts == {(s, label): n for s in ("train", "dev", "eval") for label, n in (("bonafide", 1), ("spoof", 9))}
    again = [i.relpath for i in corpus_entries("asvspoof5", root, cap)]
    assert again == [i.relpath for i in items]  # seeded: the same draw
    other = [i.relpath for i in corpus_entries("asvspoof5", root, IngestConfig(sample_per_split=10, sample_seed=1))]
    assert other != again
