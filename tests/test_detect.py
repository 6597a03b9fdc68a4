"""``dfpipe detect`` and the default-detector recipe: the recipe at a tiny scale into a temporary
folder (never the package's), then detect on a folder of mixed files with what it wrote."""

from __future__ import annotations

import csv
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from dfpipe import checkpoints
from dfpipe.config import CalibrationConfig, DefaultDetectorConfig, FrontendConfig
from dfpipe.errors import DfpipeError
from dfpipe.flows.default_detector import train_default_detector
from dfpipe.frontend import MelFrontend, load_clip
from dfpipe.llr import read_calibration
from dfpipe.models import Batch, dataclass_from_dict
from dfpipe.shipped_model import default_checkpoint, package_folder

TINY = DefaultDetectorConfig(corpus_size="small", epochs=1, epochs_by_arch={}, lr=1e-3, batch_size=16,
                             val_fraction=0.3)

# Runs the command line in a fresh interpreter and reports every heavy module it imported.
_CLI = ("import sys\nfrom dfpipe.cli import main\ntry:\n    main(sys.argv[1:])\nfinally:\n"
        "    heavy = sorted({m.split('.')[0] for m in sys.modules} & {'prefect', 'dask', 'distributed'})\n"
        "    sys.stderr.write('heavy modules: ' + ','.join(heavy) + '\\n')\n")


@pytest.fixture(scope="module")
def shipped(demo_corpus_small, tmp_path_factory):
    """The recipe at test scale: both mel models, one epoch each, into a temporary folder."""
    root = tmp_path_factory.mktemp("default")
    summary = train_default_detector(root / "pretrained", str(root / "lake"), TINY, device="cpu",
                                     log=lambda line: None)
    return summary, demo_corpus_small


def _dfpipe(*args):
    return subprocess.run([sys.executable, "-c", _CLI, *args], capture_output=True, text=True, timeout=600,
                          check=False)


def test_the_recipe_ships_the_better_ood_model_with_its_calibration(shipped):
    summary, _ = shipped
    assert {c["arch"] for c in summary.candidates} == set(TINY.archs)
    assert summary.chosen == min(summary.candidates, key=lambda c: c["ood_eer"])
    model, meta = checkpoints.load_model(summary.checkpoint)  # weights_only=True inside
    assert model.arch == summary.chosen["arch"] and meta["run_id"] == summary.chosen["run_id"]
    calibration = read_calibration(summary.checkpoint)
    assert calibration is not None and calibration.fitted_on == "val" and calibration.inputs == (
        f"{summary.chosen['run_id']}@1",)
    card = json.loads(Path(summary.metrics).read_text())
    assert card["chosen"] == summary.chosen and card["recipe"]["epochs"] == 1
    for dataset in (TINY.test_dataset, TINY.selection_dataset):
        overall = card["metrics"][dataset]["overall"]["all"]
        assert overall["n_bonafide"] > 0 and overall["n_spoof"] > 0 and overall["cllr"] is not None
        assert card["metrics"][dataset]["family"], "per-family figures"
    assert card["metrics"][TINY.selection_dataset]["overall"]["all"]["eer"] == summary.chosen["ood_eer"]


def _centre_logit(checkpoint, path):
    """An independent path to the model's logit: load_clip + MelFrontend + forward."""
    model, meta = checkpoints.load_model(checkpoint)
    frontend = MelFrontend(dataclass_from_dict(FrontendConfig, meta["frontend_config"])).eval()
    with torch.no_grad():
        wave = torch.from_numpy(load_clip(path))[None]
        return float(model(Batch(mel=frontend(wave), lfcc=None, waveform=None))[0])


def test_detect_scores_a_folder_of_mixed_files_without_prefect_or_dask(shipped, tmp_path):
    summary, corpus = shipped
    with open(corpus / "manifest.csv") as source:
        rows = list(csv.DictReader(source))
    folder = tmp_path / "mixed"
    folder.mkdir()
    picks = [next(r for r in rows if r["label"] == label) for label in ("bonafide", "spoof")]
    for i, row in enumerate(picks):
        shutil.copy(corpus / row["path"], folder / f"{i}-{row['label']}{(corpus / row['path']).suffix}")
    wave, rate = soundfile.read(corpus / picks[0]["path"], dtype="float32")
    soundfile.write(folder / "long.wav", np.concatenate([wave] * math.ceil(8 * rate / len(wave))), rate)
    (folder / "broken.wav").write_bytes(b"RIFF but not audio at all")

    done = _dfpipe("detect", str(folder), "--checkpoint", summary.checkpoint, "--json")
    assert done.returncode == 0, done.stderr
    assert "heavy modules: \n" in done.stderr
    result = {row["path"].rsplit("/", 1)[-1]: row for row in json.loads(done.stdout)}
    assert set(result) == {p.name for p in folder.iterdir()}
    assert result["broken.wav"]["verdict"] == "unreadable" and result["broken.wav"]["reason"]
    calibration = read_calibration(summary.checkpoint)
    for name, row in result.items():
        if name == "broken.wav":
            continue
        logit = _centre_logit(summary.checkpoint, str(folder / name))
        assert row["p_spoof"] == pytest.approx(1 / (1 + math.exp(-logit)), abs=1e-5)
        assert row["llr"] == pytest.approx(calibration.llr([logit])[0], abs=1e-4)
        expected = "spoof" if row["llr"] > CalibrationConfig().bayes_threshold else "bonafide"
        assert row["verdict"] == expected
    assert result["long.wav"]["n_windows"] > 1 and result["long.wav"]["duration_s"] >= 8
    assert "calibrated LLR > 0.642" in done.stderr  # the rule is printed beside the data


def test_detect_without_a_calibration_decides_on_p_spoof(shipped, tmp_path):
    summary, corpus = shipped
    bare = tmp_path / "bare.pt"
    shutil.copy(summary.checkpoint, bare)
    clip = next(corpus.rglob("*.flac"))
    done = _dfpipe("detect", str(clip), "--checkpoint", str(bare), "--format", "csv")
    assert done.returncode == 0, done.stderr
    header, line = done.stdout.strip().splitlines()
    row = dict(zip(header.split(","), next(csv.reader([line]))))
    assert row["llr"] == "" and row["verdict"] == ("spoof" if float(row["p_spoof"]) >= 0.5 else "bonafide")
    assert "P(spoof) >= 0.5" in done.stderr


def test_without_a_shipped_detector_the_error_is_one_line():
    with pytest.raises(DfpipeError, match="ships no default detector") as raised:
        default_checkpoint(DefaultDetectorConfig(checkpoint_name="absent.pt"))
    assert "\n" not in str(raised.value)


# -- the detector this checkout ships (dfpipe/pretrained, trained by `dfpipe train-default`) --

def test_the_shipped_detector_loads_with_its_calibration_and_model_card():
    checkpoint = default_checkpoint()
    assert Path(checkpoint).stat().st_size < 20 * 2**20, "a few MB, as the model card says"
    model, meta = checkpoints.load_model(checkpoint)  # weights_only=True inside
    card = json.loads((package_folder() / DefaultDetectorConfig().metrics_name).read_text())
    assert model.arch == card["chosen"]["arch"] and meta["run_id"] == card["chosen"]["run_id"]
    calibration = read_calibration(checkpoint)
    assert calibration is not None and calibration.fitted_on == "val"
    assert list(calibration.weights) == card["calibration"]["weights"]


def test_detect_and_score_archive_use_the_shipped_detector_by_default(demo_corpus_small, tmp_path):
    """No --checkpoint: ``detect`` prints the shipped model's calibrated LLR of each file (computed
    here independently), and ``score-archive`` tags its scores with the shipped run."""
    checkpoint = default_checkpoint()
    clips = sorted(demo_corpus_small.glob("ood/*/*/*.flac"))[:2] + sorted(demo_corpus_small.glob("test/*/*/*.flac"))[:2]
    folder = tmp_path / "mine"
    folder.mkdir()
    for clip in clips:
        shutil.copy(clip, folder / f"{clip.parent.parent.name}-{clip.name}")
    done = _dfpipe("detect", str(folder), "--json")
    assert done.returncode == 0, done.stderr
    calibration = read_calibration(checkpoint)
    rows = json.loads(done.stdout)
    assert len(rows) == len(clips)
    for row in rows:
        logit = _centre_logit(checkpoint, row["path"])
        assert row["llr"] == pytest.approx(calibration.llr([logit])[0], abs=1e-4)

    archived = _dfpipe("score-archive", str(folder), "--out", str(tmp_path / "scores"), "--no-flow")
    assert archived.returncode == 0, archived.stderr
    import pyarrow.parquet as pq

    scores = pq.read_table(tmp_path / "scores" / "scores").to_pylist()
    _, meta = checkpoints.load_model(checkpoint)
    assert len(scores) == len(clips) and {row["run_id"] for row in scores} == {meta["run_id"]}
