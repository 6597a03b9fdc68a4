"""The demo corpus: plan (pure), channel, shortcut check, and the small build itself.

The build runs once per machine (the ``demo_corpus_small`` session fixture); everything
else here is fast.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.signal import lfilter

from dfpipe.cli import main
from dfpipe.config import DemoCorpusConfig
from dfpipe.corpora.demo import build_demo_corpus, shortcut_check
from dfpipe.corpora.demo.build import MANIFEST_COLUMNS, plan_demo_corpus
from dfpipe.corpora.demo.channel import ChannelDraw, finish, prepare
from dfpipe.corpora.demo.check import asvspoof_eer, clip_features
from dfpipe.corpora.demo.sources import list_bonafide_sources
from dfpipe.errors import ConfigError, RejectedInput

SR = 16_000


def _rows(corpus):
    with open(corpus / "manifest.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def sources():
    found = list_bonafide_sources()
    if not found:
        pytest.skip("asterisk-core-sounds-*-g722 / pocketsphinx-testdata not installed")
    return found


@pytest.mark.parametrize("size", ["small", "full"])
def test_plan_keeps_sources_texts_and_pairs_in_one_split(sources, size):
    config = DemoCorpusConfig()
    # about as many recordings per voice as pass the real scan (~240)
    per_speaker: dict[str, list] = {}
    for source in sources:
        per_speaker.setdefault(source.speaker, []).append(source)
    sources = [s for group in per_speaker.values() for s in group[:240]]
    pairs = plan_demo_corpus(sources, {s.source_id: 3.0 for s in sources}, size, 0, config)
    by_split: dict[str, dict[str, set]] = {}
    for pair in pairs:
        split = pair.bonafide.split
        assert pair.spoof.split == split
        seen = by_split.setdefault(split, {"source": set(), "text": set(), "pair": set(), "path": set()})
        seen["source"].add(pair.bonafide.source.source_id)
        seen["text"].add(pair.spoof.text)
        seen["pair"].add((pair.spoof.text, pair.spoof.speaker))
        seen["path"].update({pair.bonafide.path, pair.spoof.path})
        # ood = the neural family, voices of unseen languages and unseen speakers; train/test never hold them
        ood_voice = pair.spoof.family == config.ood_family or pair.spoof.language in config.ood_languages
        assert ood_voice == (split == "ood")
        assert pair.bonafide.speaker.startswith(config.ood_speakers) == (split == "ood")
    for kind in ("source", "text", "pair", "path"):
        for a in by_split:
            for b in by_split:
                if a < b:
                    assert not by_split[a][kind] & by_split[b][kind], (kind, a, b)
    per_split = Counter(pair.bonafide.split for pair in pairs)
    if size == "small":
        assert tuple(per_split[s] for s in ("train", "test", "ood")) == config.small_per_class
    else:
        assert sum(per_split.values()) == len(sources)
    # Pairs are distinct within a split too (no clip made twice).
    assert len({(p.spoof.text, p.spoof.speaker) for p in pairs}) == len(pairs)


def test_plan_is_deterministic_and_depends_on_the_seed(sources):
    config = DemoCorpusConfig()
    speech = {s.source_id: 3.0 for s in sources}
    first = plan_demo_corpus(sources, speech, "small", 0, config)
    assert first == plan_demo_corpus(sources, speech, "small", 0, config)
    assert first != plan_demo_corpus(sources, speech, "small", 1, config)


def test_channel_erases_level_bandwidth_and_padding():
    """Two very different inputs (loud bright noise with silence around it, quiet dull
    noise) come out with the same length, level, crest and similar spectral roll-off."""
    config = DemoCorpusConfig()
    rng = np.random.default_rng(0)
    t = np.arange(SR * 3) / SR
    bright = 0.5 * rng.standard_normal(SR * 3) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    bright = np.concatenate([np.zeros(SR // 2), bright, np.zeros(SR)]).astype(np.float32)
    dull = lfilter([1.0], [1.0, -0.9], rng.standard_normal(SR * 3)).astype(np.float32) * 0.01
    draw = ChannelDraw(rms_dbfs=-25.0, crest_db=12.0, slope_db_per_octave=-7.5, mp3_kbps=0)
    features = []
    for x in (bright, dull):
        y = finish(prepare(x, SR, config, is_g722=False), SR, 2 * SR, draw, config)
        assert len(y) == 2 * SR  # padding trimmed, cut to the requested length
        features.append(clip_features(y, SR))
    for _, rms, peak, _, lead, trail in features:
        assert rms == pytest.approx(-25.0, abs=0.1)
        assert peak - rms <= draw.crest_db + 0.2
        assert lead == trail == 0.0
    assert features[0][3] == pytest.approx(features[1][3], rel=0.2)  # 95 % roll-off


def test_channel_rejects_silence():
    with pytest.raises(RejectedInput, match="no_speech"):
        prepare(np.zeros(SR, dtype=np.float32), SR, DemoCorpusConfig(), is_g722=False)


def test_asvspoof_eer_matches_the_reference():
    from asv_reference import eer as reference_eer

    assert asvspoof_eer(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 0.0
    assert asvspoof_eer(np.array([0.0, 1.0]), np.array([2.0, 3.0])) == 1.0
    rng = np.random.default_rng(0)
    for _ in range(20):  # rounded scores: plenty of ties between and within classes
        bona, spoof = rng.normal(1, 1, 30).round(1), rng.normal(0, 1, 25).round(1)
        assert asvspoof_eer(bona, spoof) == pytest.approx(reference_eer(bona, spoof)[0])


def test_bad_size_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="size"):
        build_demo_corpus(tmp_path, "huge")


def test_small_corpus_manifest(demo_corpus_small):
    rows = _rows(demo_corpus_small)
    with open(demo_corpus_small / "manifest.csv", encoding="utf-8") as handle:
        assert handle.readline().strip() == ",".join(MANIFEST_COLUMNS)
    assert 180 <= len(rows) <= 200
    assert {r["label"] for r in rows} == {"bonafide", "spoof"}
    assert {r["split"] for r in rows} == {"train", "test", "ood"}
    assert all((demo_corpus_small / r["path"]).is_file() for r in rows)
    assert len({r["path"] for r in rows}) == len(rows)
    per = Counter((r["split"], r["label"]) for r in rows)
    for split in ("train", "test", "ood"):
        assert per[(split, "bonafide")] == per[(split, "spoof")]
    train_speakers = {r["speaker"] for r in rows if r["split"] == "train"}
    ood = [r for r in rows if r["split"] == "ood"]
    assert not {r["speaker"] for r in ood} & train_speakers
    # ood spoofs: the neural family, and Italian voices (a language train/test never speak)
    assert {(r["family"], r["language"]) for r in ood if r["label"] == "spoof"} == {("neural", "en"),
                                                                                   ("diphone", "it")}
    in_distribution = [r for r in rows if r["split"] != "ood"]
    assert "neural" not in {r["family"] for r in in_distribution}
    assert "it" not in {r["language"] for r in in_distribution}
    assert "unit" in {r["family"] for r in rows if r["split"] == "train"}
    assert (demo_corpus_small / "ATTRIBUTION.md").read_text().count("CC-BY-SA-3.0") >= 1
    stamp = json.loads((demo_corpus_small / "build.json").read_text())
    assert sum(stamp["excluded"].get(v, 0) for v in ("silence", "tone", "sound_effect")) > 0


def test_rebuild_is_a_cache_hit_and_resume_gives_the_same_manifest(demo_corpus_small, tmp_path):
    again = build_demo_corpus(demo_corpus_small, "small", 0)
    assert again.cached and again.built == 0
    # Resume: the audio is there but manifest and stamp are gone; nothing is re-rendered
    # and the manifest comes out byte-identical.
    copy = tmp_path / "copy"
    shutil.copytree(demo_corpus_small, copy)
    (copy / "manifest.csv").unlink()
    (copy / "build.json").unlink()
    resumed = build_demo_corpus(copy, "small", 0)
    assert not resumed.cached and resumed.built == 0 and resumed.skipped == resumed.clips
    assert (copy / "manifest.csv").read_bytes() == (demo_corpus_small / "manifest.csv").read_bytes()


def test_shortcut_check_is_near_chance(demo_corpus_small):
    results = shortcut_check(demo_corpus_small)
    assert [r.split for r in results] == ["test", "ood"]
    for result in results:
        assert result.eer >= DemoCorpusConfig().shortcut_min_eer, result


def test_cli_build_hit_and_check(demo_corpus_small):
    runner = CliRunner()
    built = runner.invoke(main, ["corpus", "build-demo", "--out", str(demo_corpus_small), "--size", "small"])
    assert built.exit_code == 0, built.output
    assert "cache hit" in built.output and "not speech" in built.output
    checked = runner.invoke(main, ["corpus", "check", str(demo_corpus_small)])
    assert checked.exit_code == 0, checked.output
    assert "| test |" in checked.output and "| ood |" in checked.output


def test_ingest_csv_puts_every_clip_in_clips(demo_corpus_small, tmp_path):
    from dfpipe.config import IngestConfig
    from dfpipe.ingest import corpus_entries, ingest
    from dfpipe.lake import Lake

    config = IngestConfig()
    lake = str(tmp_path / "lake")
    summary = ingest(lake, "demo", corpus_entries("csv", demo_corpus_small / "manifest.csv", config), config)
    assert summary.rejects == 0
    rows = _rows(demo_corpus_small)
    got = Lake(lake).connect().execute(
        "select split, label, coalesce(generator, ''), coalesce(family, ''), speaker, language, "
        "count(*) from clips group by all order by all"
    ).fetchall()
    want = Counter((r["split"], r["label"], r["generator"], r["family"], r["speaker"], r["language"]) for r in rows)
    assert {row[:-1]: row[-1] for row in got} == dict(want)
