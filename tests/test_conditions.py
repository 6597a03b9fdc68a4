from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from audio_helpers import ffmpeg, speak, write_clips

from dfpipe.audio_io import decode, probe
from dfpipe.conditions import (
    apply_condition,
    clip_seed,
    describe_condition,
    parse_condition,
    plan_conditions,
    run_conditions,
)
from dfpipe.config import ConditionsConfig
from dfpipe.errors import ConfigError, RejectedInput
from dfpipe.lake import Lake

CFG = ConditionsConfig()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A lake with three real clips (two espeak-ng voices, one 44.1 kHz stereo tone mix)
    and one broken file (bytes that are not audio)."""
    root = tmp_path_factory.mktemp("conditions")
    files = [
        speak(root / "a.wav", "Deepfake detectors must survive compression and noise."),
        speak(root / "b.wav", "Polished audio sounds cleaner than raw recordings.", voice="en-us"),
        ffmpeg(root / "c.flac", "-f", "lavfi", "-i", "sine=frequency=300:duration=2:sample_rate=44100",
               "-ac", "2"),
    ]
    broken = root / "broken.mp3"
    broken.write_bytes(b"ID3 this is not an mp3 at all" * 20)
    lake = Lake(str(root / "lake"))
    ids = write_clips(lake, "tiny", [*files, broken])
    return lake, ids, files


def _speech(corpus):
    return decode(corpus[2][0], CFG.audio.sample_rate)


def test_grammar_names_encode_parameters():
    steps = parse_condition("corrupt+bandlimit_300_3400+mp3_64k")
    assert [(s.kind, s.args) for s in steps] == [("corrupt", ("corrupt",)), ("bandlimit", (300, 3400)),
                                                 ("codec", ("mp3", 64))]
    assert parse_condition("raw") == []
    for bad in ["mp3", "mp3_64", "noise", "bandlimit_3400_300", "resample_48000", "flac+raw", "polish"]:
        with pytest.raises(ConfigError, match="condition"):
            parse_condition(bad)



def test_describe_condition_names_codec_and_corruption():
    assert describe_condition("noise_snr10+flac") == ("flac", "noise_snr10")
    assert describe_condition("corrupt+mp3_64k") == ("mp3_64k", "corrupt")
    assert describe_condition("flac") == ("flac", None)
    assert describe_condition("raw") == ("raw", None)
    assert describe_condition("polished") == ("flac", "polished")  # stored as FLAC
    assert describe_condition("reverb_300ms+clip_30pct") == ("flac", "reverb_300ms+clip_30pct")
    with pytest.raises(ConfigError, match="unknown step"):
        describe_condition("mp3")


def test_the_grammar_imports_without_ffmpeg():
    code = ("import sys; import dfpipe.conditions.grammar; "
            "assert 'av' not in sys.modules and 'dfpipe.conditions.dsp' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)

def test_mp3_decoded_back_differs_measurably_from_flac(corpus):
    wave = _speech(corpus)
    flac, _ = apply_condition(wave, "flac", 0, CFG)
    mp3, _ = apply_condition(wave, "mp3_32k", 0, CFG)
    assert probe(mp3).codec.startswith("mp3") and probe(flac).codec == "flac"
    from_flac, from_mp3 = decode(flac, 16000), decode(mp3, 16000)
    assert from_flac.shape == from_mp3.shape == wave.shape
    np.testing.assert_allclose(from_flac, wave, atol=1 / 32768 + 1e-6)  # FLAC: lossless to 16 bits
    error = from_mp3 - from_flac
    snr_db = 10 * np.log10(np.sum(from_flac ** 2) / np.sum(error ** 2))
    assert snr_db < 30  # MP3's artefacts are real (FLAC's error would be ~90 dB down)


def test_corrupt_is_reproducible_byte_for_byte_and_records_its_draws(corpus):
    wave = _speech(corpus)
    first, params = apply_condition(wave, "corrupt", 1234, CFG)
    again, params_again = apply_condition(wave, "corrupt", 1234, CFG)
    other, _ = apply_condition(wave, "corrupt", 99, CFG)
    assert first == again and params == params_again
    assert first != other
    assert params["applied"] == params["corrupt"] and parse_condition(params["corrupt"])  # a valid name
    # the recorded expansion, applied as a plain condition with the same seed, gives the same bytes
    assert apply_condition(wave, params["corrupt"], 1234, CFG)[0] == first


@pytest.mark.parametrize("condition", ["noise_snr10", "clip_30pct", "bandlimit_300_3400", "resample_8000",
                                       "packetloss_10pct_20ms", "reverb_300ms", "opus_24k", "aac_48k"])
def test_each_corruption_and_codec_changes_the_audio(corpus, condition):
    wave = _speech(corpus)
    data, params = apply_condition(wave, condition, 7, CFG)
    assert apply_condition(wave, condition, 7, CFG)[0] == data  # bit-exact containers
    out = decode(data, 16000)
    n = min(out.shape[0], wave.shape[0])
    assert np.max(np.abs(out[:n] - wave[:n])) > 0.01
    assert params["applied"] == condition


def _ebur128_lufs(data: bytes, tmp_path) -> float:
    path = tmp_path / "measure.flac"
    path.write_bytes(data)
    log = subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-i", str(path), "-af", "ebur128",
                          "-f", "null", "-"], capture_output=True, text=True, check=True).stderr
    return float(re.findall(r"I:\s+(-?[\d.]+) LUFS", log)[-1])


def test_polished_reaches_its_loudness_target(corpus, tmp_path):
    for quiet in (1.0, 0.05):
        data, params = apply_condition(_speech(corpus) * quiet, "polished", 0, CFG)
        assert abs(_ebur128_lufs(data, tmp_path) - CFG.polish_loudness_lufs) < 1.0
        assert params["loudness_target_lufs"] == CFG.polish_loudness_lufs
    # leading/trailing silence is trimmed to polish_trim_keep_s at each end
    speech = _speech(corpus)
    second = np.zeros(CFG.audio.sample_rate, np.float32)
    _, padded = apply_condition(np.concatenate([second, speech, second]), "polished", 0, CFG)
    assert padded["samples"] < speech.shape[0] + 2 * CFG.polish_trim_keep_s * CFG.audio.sample_rate + 1600
    target = ConditionsConfig(polish_loudness_lufs=-16.0)
    data, _ = apply_condition(_speech(corpus), "polished", 0, target)
    assert abs(_ebur128_lufs(data, tmp_path) + 16.0) < 1.0


def test_composition_applies_left_to_right(corpus):
    wave = _speech(corpus)
    composed, params = apply_condition(wave, "bandlimit_300_3400+mp3_64k", 0, CFG)
    assert probe(composed).codec.startswith("mp3") and params["stored_codec"] == "mp3"
    # mp3 first, then band-limiting: stored as FLAC, lossy artefacts kept inside
    reverse, params = apply_condition(wave, "mp3_64k+bandlimit_300_3400", 0, CFG)
    assert probe(reverse).codec == "flac" and params["applied"] == "mp3_64k+bandlimit_300_3400"
    spectrum = np.abs(np.fft.rfft(decode(composed, 16000)))
    freqs = np.fft.rfftfreq(decode(composed, 16000).shape[0], 1 / 16000)
    assert spectrum[freqs > 6000].mean() < 0.05 * spectrum[(freqs > 500) & (freqs < 3000)].mean()


def test_stage_writes_audio_rejects_and_skips_on_rerun(corpus):
    lake, ids, _ = corpus
    uri = lake.uri
    summary = run_conditions(uri, "tiny", ["flac", "corrupt+mp3_64k", "raw"], CFG)
    assert (summary.rows, summary.rejects) == (6, 2)
    con = lake.connect()
    rows = con.execute("select clip_id, condition, seed, codec, sample_rate, condition_params from audio "
                       "order by condition, clip_id").fetchall()
    assert {r[1] for r in rows} == {"flac", "corrupt+mp3_64k"} and {r[4] for r in rows} == {16000}
    for clip_id, condition, seed, codec, _, params in rows:
        assert seed == clip_seed(clip_id, condition, CFG.seed) == json.loads(params)["seed"]
        assert codec == ("flac" if condition == "flac" else "mp3")
    rejects = con.execute("select stage, clip_id, condition, reason from rejects order by condition").fetchall()
    assert [(r[0], r[1], r[3]) for r in rejects] == [("condition", ids[3], "undecodable")] * 2
    # re-run: nothing left to do, nothing written twice
    assert plan_conditions(uri, "tiny", ["flac", "corrupt+mp3_64k"], CFG) == []
    assert run_conditions(uri, "tiny", ["flac", "corrupt+mp3_64k"], CFG).rows == 0
    assert con.execute("select count(*) from audio").fetchone() == (6,)
    # the bytes are what a fresh computation gives (per-clip seed, bit-exact encoders)
    first = lake.read("audio").to_pylist()
    again = Lake(str(lake.root) + "-again")
    write_clips(again, "tiny", corpus[2])
    run_conditions(again.uri, "tiny", ["corrupt+mp3_64k"], CFG)
    fresh = {r["clip_id"]: r["audio_bytes"] for r in again.read("audio").to_pylist()}
    assert all(fresh[r["clip_id"]] == r["audio_bytes"] for r in first if r["condition"] == "corrupt+mp3_64k")


def test_missing_corpus_and_bad_names_fail_before_work(corpus):
    lake = corpus[0]
    with pytest.raises(ConfigError, match="no clips"):
        plan_conditions(lake.uri, "nope", ["flac"])
    with pytest.raises(ConfigError, match="unknown step 'mp4_64k'"):
        plan_conditions(lake.uri, "tiny", ["flac", "mp4_64k"])


def test_a_corpus_with_an_eight_channel_file_conditions_every_clip(tmp_path):
    import soundfile

    files = [speak(tmp_path / "a.wav", "Eight channels used to stop the whole stage."),
             ffmpeg(tmp_path / "b.flac", "-f", "lavfi", "-i", "sine=frequency=300:duration=2", "-ac", "2")]
    tone = 0.2 * np.sin(np.arange(32_000) / 16_000 * 2 * np.pi * 440)
    soundfile.write(tmp_path / "eight.wav", np.stack([tone] * 8, axis=1), 16_000)  # a 7.1 export
    files.append(tmp_path / "eight.wav")
    lake = Lake(str(tmp_path / "lake"))
    ids = write_clips(lake, "multi", files)
    summary = run_conditions(lake.uri, "multi", ["mp3_64k"], CFG)
    assert (summary.rows, summary.rejects) == (3, 0)
    assert sorted(lake.read("audio", columns=["clip_id"]).column("clip_id").to_pylist()) == sorted(ids)


def test_non_finite_audio_never_reaches_an_encoder():
    wave = np.sin(np.arange(16_000, dtype=np.float32) * 0.05)
    wave[10] = np.inf
    for condition in ("flac", "noise_snr10+mp3_64k", "clip_30pct"):
        with pytest.raises(RejectedInput) as caught:
            apply_condition(wave, condition, 0, CFG)
        assert caught.value.reason == "non_finite_samples"
