"""The built-in demo corpus: real speech and seven speech generators through one channel.

``build_demo_corpus(out_dir, size, seed, executor)`` makes it (``dfpipe corpus
build-demo``); ``shortcut_check(out_dir)`` proves that cheap features cannot tell the
classes apart (``dfpipe corpus check``). Modules: :mod:`.sources` (bona fide recordings and
the VAD), :mod:`.generators` (TTS engines), :mod:`.texts` (sentences), :mod:`.channel`
(the shared channel), :mod:`.build` (plan, render, manifest), :mod:`.check`,
:mod:`.attribution`.
"""

from dfpipe.corpora.demo.build import DemoBuildSummary, build_demo_corpus, cached_build
from dfpipe.corpora.demo.check import ShortcutResult, shortcut_check

__all__ = ["DemoBuildSummary", "ShortcutResult", "build_demo_corpus", "cached_build", "shortcut_check"]
