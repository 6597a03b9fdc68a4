"""Stand-in corpora: each release's layout, read back by its own adapter."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from dfpipe.cli import main
from dfpipe.config import STANDIN_RELEASES, IngestConfig, StandinConfig
from dfpipe.corpora.standin import build_standin
from dfpipe.errors import ConfigError
from dfpipe.ingest import corpus_entries, ingest
from dfpipe.lake import Lake

N = 12


@pytest.mark.parametrize("like", STANDIN_RELEASES)
def test_each_standin_ingests_one_clip_per_row_and_no_reject(like, demo_corpus_small, tmp_path):
    summary = build_standin(like, tmp_path / like, demo_corpus_small, StandinConfig(n=N))
    parts = 3 if like == "asvspoof5" else 2 if like == "folder" else 1
    assert summary.rows == parts * N
    lake = str(tmp_path / "lake")
    result = ingest(lake, "standin", corpus_entries(like, summary.root, IngestConfig()), IngestConfig())
    assert (result.clips, result.rejects) == (summary.rows, 0)
    con = Lake(lake).connect()
    labels = dict(con.execute("select label, count(*) from clips group by label").fetchall())
    assert set(labels) == {"bonafide", "spoof"}
    if like == "asvspoof5":
        # Track 2 enrolment files sit in flac_D/ and flac_E_eval/ but are in no Track 1 protocol
        assert summary.files == summary.rows + 2 * 4 * StandinConfig().enrolment_per_speaker
        splits = dict(con.execute("select split, count(*) from clips group by split").fetchall())
        assert splits == {"train": N, "dev": N, "eval": N}
        train_bonafide = con.execute("select count(*) from clips where split = 'train' and label = 'bonafide'")
        assert train_bonafide.fetchone() == (round(N * StandinConfig().asvspoof5_bonafide_share),)
        assert con.execute("select count(*) from clips where label = 'spoof' and generator not like 'A%'"
                           ).fetchone() == (0,)
    if like == "folder":
        assert dict(con.execute("select split, count(*) from clips group by split").fetchall()) == {
            "train": N, "test": N}
    if like == "deepfake-eval-2024":
        assert {row[0] for row in con.execute("select source_format from clips").fetchall()} >= {"mp3", "wav"}


def test_cli_writes_the_layout_and_refuses_an_existing_folder(demo_corpus_small, tmp_path, monkeypatch):
    monkeypatch.setenv("DFPIPE_CACHE", str(demo_corpus_small.parent))
    out = tmp_path / "asv5"
    result = CliRunner().invoke(main, ["corpus", "build-standin", "--like", "asvspoof5", "--out", str(out),
                                       "--n", "8"])
    assert result.exit_code == 0, result.output
    assert f"dfpipe ingest --format asvspoof5 {out}" in result.output
    protocols = sorted(p.name for p in (out / "ASVspoof5_protocols").iterdir())
    assert protocols == ["ASVspoof5.codec.config.csv", "ASVspoof5.dev.track_1.tsv",
                         "ASVspoof5.dev.track_2.enroll.tsv", "ASVspoof5.dev.track_2.trial.tsv",
                         "ASVspoof5.eval.track_1.tsv", "ASVspoof5.eval.track_2.enroll.tsv",
                         "ASVspoof5.eval.track_2.trial.tsv", "ASVspoof5.train.tsv"]
    line = (out / "ASVspoof5_protocols" / "ASVspoof5.train.tsv").read_text().splitlines()[0].split()
    assert len(line) == 10 and line[1] == "T_0000000000" and line[-1] == "-"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left
    again = CliRunner().invoke(main, ["corpus", "build-standin", "--like", "asvspoof5", "--out", str(out)])
    assert again.exit_code != 0 and "already exists" in again.output
    with pytest.raises(ConfigError, match="no demo corpus|manifest.csv"):
        build_standin("folder", tmp_path / "x", tmp_path / "nowhere")
