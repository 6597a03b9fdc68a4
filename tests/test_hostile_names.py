"""File names and manifests as old archives have them: bytes that are not UTF-8, control
characters, a folder named like audio, spreadsheet encodings. Each is a clip or a reject
with a reason, never a crash; a name that is not UTF-8 is kept exactly and read back by
the later stages."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner
from ingest_fixtures import tone

from dfpipe import checkpoints
from dfpipe.archive_scoring import score_archive
from dfpipe.cli import main
from dfpipe.conditions.stage import run_conditions
from dfpipe.config import FrontendConfig, IngestConfig
from dfpipe.export import export_lhotse
from dfpipe.ingest import corpus_entries, ingest
from dfpipe.lake import Lake, stable_id
from dfpipe.models import build_model, config_to_dict
from dfpipe.stage_kit import (
    as_source_uri,
    local_path,
    printable,
    read_source,
    reject_row,
    rejects_table,
)

LATIN1_NAME = b"caf\xe9.wav"  # 'café.wav' as a latin-1 system wrote it: not UTF-8


def bytes_named(folder: Path, name: bytes, freq: float) -> str:
    """A tone written under the byte name ``name`` in ``folder``; its OS path (surrogates)."""
    path = os.fsdecode(os.fsencode(folder) + b"/" + name)
    os.rename(tone(folder / f"tmp-{freq}.wav", freq), path)
    return path


def test_names_that_are_not_utf8_have_ids_uris_and_a_printable_form():
    name = os.fsdecode(b"/c/fake/" + LATIN1_NAME)
    assert stable_id("c", name) != stable_id("c", "/c/fake/café.wav")  # distinct from the UTF-8 spelling
    uri = as_source_uri(name)
    assert uri == "file:///c/fake/caf%E9.wav" and as_source_uri(uri) == uri
    assert os.fsencode(local_path(uri)) == b"/c/fake/" + LATIN1_NAME
    assert as_source_uri("/c/real/a b%.wav") == "/c/real/a b%.wav"  # UTF-8 names stay plain paths
    assert local_path(as_source_uri("/c/esc\x1b.wav")) == "/c/esc\x1b.wav"
    assert printable(name) == "/c/fake/caf\\xe9.wav"
    # a reject row is a valid Arrow row whatever the name
    table = rejects_table([reject_row("ingest", name, "undecodable", f"{name}: bad")])
    assert table.column("source_uri").to_pylist() == [uri]
    assert table.column("detail").to_pylist() == ["/c/fake/caf\\xe9.wav: bad"]


@pytest.fixture(scope="module")
def hostile_folder(tmp_path_factory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("hostile") / "corpus"
    tone(root / "real" / "a.wav", 300)
    latin1 = bytes_named(root / "fake", LATIN1_NAME, 320)
    bytes_named(root / "fake", b"esc\x1b[2J.wav", 340)  # a terminal escape in the name
    tone(root / "fake" / "take.wav" / "inner.wav", 360)  # a folder named like audio, audio inside
    return root, latin1


def test_folder_corpus_keeps_a_latin1_name_and_conditions_read_it(hostile_folder, tmp_path):
    root, latin1 = hostile_folder
    lake, config = str(tmp_path / "lake"), IngestConfig()
    summary = ingest(lake, "h", corpus_entries("folder", root, config), config)
    assert (summary.clips, summary.reasons) == (3, {"control_character": 1, "not_a_file": 1})
    con = Lake(lake).connect()
    clips = dict(con.execute("select source_relpath, source_uri from clips").fetchall())
    assert sorted(clips) == ["fake/caf\\xe9.wav", "fake/take.wav/inner.wav", "real/a.wav"]
    uri = clips["fake/caf\\xe9.wav"]
    assert uri.startswith("file://") and read_source(uri) == Path(latin1).read_bytes()
    rejects = dict(con.execute("select reason, source_uri from rejects").fetchall())
    assert rejects["not_a_file"] == str(root / "fake" / "take.wav")
    assert local_path(rejects["control_character"]) == str(root / "fake" / "esc\x1b[2J.wav")

    again = ingest(lake, "h", corpus_entries("folder", root, config), config)
    assert (again.clips, again.rejects, again.skipped) == (0, 0, 5)
    # the conditions stage reads clips by source_uri: the latin-1 name decodes like any other
    made = run_conditions(lake, "h", ["flac"])
    assert (made.rows, made.rejects) == (3, 0)
    # exported to lhotse and read back, the name is still the same file
    export_lhotse(lake, str(tmp_path / "lhotse"), ["h"])
    sources = {e.source for e in corpus_entries("lhotse", tmp_path / "lhotse", IngestConfig(allow_outside_root=True))}
    assert sources == set(clips.values())


def test_cli_non_utf8_name_and_latin1_manifest(prefect_server, hostile_folder, tmp_path):
    root, _ = hostile_folder
    runner = CliRunner()
    base = ["ingest", "--lake", str(tmp_path / "lake"), "--workers", "1"]
    ok = runner.invoke(main, [*base, "--corpus", "h", "--format", "folder", str(root)])
    assert ok.exit_code == 0, ok.output
    assert "h: 3 clips and 2 rejects added (control_character 1, not_a_file 1)" in ok.output

    manifest = tmp_path / "m" / "manifest.csv"
    tone(manifest.parent / "a.wav", 400)
    manifest.write_bytes("path,label,speaker\na.wav,real,Zoë\n".encode("latin-1"))
    bad = runner.invoke(main, [*base, "--corpus", "m", "--format", "csv", str(manifest)])
    assert bad.exit_code == 1, bad.output
    message = f"{manifest}: line 2, byte offset 32: b'\\xeb' is not utf-8; it reads as cp1252: pass --encoding cp1252"
    assert [line for line in bad.output.splitlines() if message in line], bad.output


def test_score_archive_lists_scores_and_skips_a_latin1_name(hostile_folder, tmp_path):
    root, latin1 = hostile_folder
    torch.manual_seed(0)
    checkpoint = str(tmp_path / "epoch-001.pt")
    checkpoints.save(checkpoints.model_payload(build_model("mel-cnn").eval(), run_id="r1", epoch=1,
                                               frontend_config=config_to_dict(FrontendConfig())), checkpoint)
    out = str(tmp_path / "scores")
    first = score_archive([str(root)], checkpoint, out, progress=False, log=lambda line: None)
    assert (first.files, first.scored, first.rejected) == (4, 4, 0)
    paths = pq.read_table(f"{out}/scores").column("path").to_pylist()
    assert as_source_uri(latin1) in paths and all(os.path.exists(local_path(p)) for p in paths)
    again = score_archive([str(root)], checkpoint, out, progress=False, log=lambda line: None)
    assert (again.skipped, again.scored) == (4, 0)
