"""Fuzzing ingest with generated manifests and generated file names (hypothesis).

Property: ingest ends normally (or, for a header without a required column or a manifest
in an undeclared encoding, with one :class:`ConfigError`); every manifest row and every file
becomes exactly one clip or one reject with a known reason and a detail; nothing is counted
twice, not even by a re-run; a clip's ``source_uri`` reads back the bytes it was hashed from.

Seeded and bounded (``derandomize=True``): :data:`EXAMPLES` examples per test, set by the
environment variable ``DFPIPE_FUZZ_EXAMPLES`` for a longer run
(``DFPIPE_FUZZ_EXAMPLES=500 pytest tests/test_fuzz_manifests.py -s``). The counts of each run
(inputs tried, rejected by reason, crashes) are printed at the end of the module (``-s``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingest_fixtures import tone

from dfpipe.config import IngestConfig
from dfpipe.corpora import ADAPTERS, CorpusEntry
from dfpipe.errors import ConfigError
from dfpipe.ingest import IngestSummary, ingest
from dfpipe.lake import Lake
from dfpipe.stage_kit import read_source

EXAMPLES = int(os.environ.get("DFPIPE_FUZZ_EXAMPLES", "30"))
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
CONFIG = IngestConfig(files_per_shard=3)
REASONS = {"bad_label", "bad_split", "bad_row", "bad_path", "control_character", "missing", "outside_root",
           "duplicate_entry", "not_a_file", "unreadable", "empty", "undecodable", "not_audio", "no_samples",
           "too_short", "duplicate", "non_finite", "constant", "truncated", "symlink_loop", "too_many_channels"}
"""Every reason the adapters and the probe give; the later ones come from the decoder's checks."""
TALLY: Counter[str] = Counter()

# -- the corpus the manifests point into --------------------------------------------------
_NAMES = ["a.wav", "b.flac", "dir/c.wav", "é ü.wav", 'q"uote,comma.wav', "日本.wav"]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("fuzz")
    root = base / "corpus"
    for i, name in enumerate(_NAMES):
        tone(root / name, 300 + 20 * i, seconds=0.2)
    (root / "garbage.wav").write_bytes(b"not audio at all" * 8)
    tone(base / "outside.wav", 500, seconds=0.2)
    yield root
    print(f"\nfuzz tally ({EXAMPLES} examples per test): "
          + ", ".join(f"{key} {n}" for key, n in sorted(TALLY.items())))


def _paths(root: Path) -> st.SearchStrategy[str]:
    names = [*_NAMES, "garbage.wav"]
    return st.one_of(
        st.sampled_from(names),
        st.sampled_from([f"./{names[0]}", f"dir/../{names[1]}", "../outside.wav", "missing.wav", "", "dir",
                         "a\x00.wav", "a\n.wav", "\x1b[2J.wav", "../../etc/passwd", "  a.wav  "]),
        st.sampled_from(names).map(lambda n: str(root / n)),  # absolute, inside
        st.just(str(root.parent / "outside.wav")),            # absolute, outside
        st.text(st.sampled_from("aé日/.\\ ,\"'\t\x00-_😀"), max_size=12),
    )


_LABELS = st.sampled_from(["real", "FAKE", " bona-fide ", "spoof", "0", "1", "", "maybe", "spo\x00of", "Zoë"])
_EXTRA = st.text(st.sampled_from("aé,\"\n\r 1"), max_size=6)


@st.composite
def manifests(draw, root: Path) -> tuple[bytes, str | None, int, bool]:
    """``(file bytes, encoding option, records, refused)`` of one CSV manifest.

    ``records``: the rows a CSV reader sees (a bare CR written unquoted under ``\\n`` line
    ends starts a new one); ``refused``: a required column is missing, or the encoding is
    neither marked nor given.
    """
    columns = ["path", "label"]
    columns += draw(st.lists(st.sampled_from(["speaker", "split", "generator", "snr", "notes"]), unique=True,
                             max_size=3))
    if draw(st.sampled_from([False] * 9 + [True])):  # one header in ten lacks a required column
        columns.remove(draw(st.sampled_from(["path", "label"])))
    rows = []
    for _ in range(draw(st.integers(1, 8))):
        row = {"path": draw(_paths(root)), "label": draw(_LABELS), "split": draw(st.sampled_from(["train", "val", "x"]))}
        values = [row.get(c, draw(_EXTRA)) for c in columns]
        shape = draw(st.sampled_from(["ok", "ok", "ok", "short", "long"]))
        if shape == "short" and len(values) > 2:
            values = values[:-1]
        elif shape == "long":
            values = [*values, "surplus"]
        rows.append(values)
    if rows and draw(st.booleans()):
        rows.append(draw(st.sampled_from(rows)))  # a duplicate row
    text = io.StringIO()
    writer = csv.writer(text, quoting=draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL])),
                        lineterminator=draw(st.sampled_from(["\n", "\r\n"])))
    writer.writerow(columns)
    writer.writerows(rows)
    encoding, option = draw(st.sampled_from([("utf-8", None), ("utf-8-sig", None), ("utf-16", None),
                                             ("utf-32", None), ("cp1252", "cp1252"), ("latin-1", None)]))
    data = text.getvalue().encode(encoding, "replace")
    decodable = option is not None or encoding != "latin-1" or data.isascii()
    records = sum(1 for record in csv.reader(io.StringIO(text.getvalue(), newline="")) if record) - 1
    return data, option, records, not decodable or not {"path", "label"} <= set(columns)


@FUZZ
@given(data=st.data())
def test_generated_manifests_give_one_clip_or_reject_per_row(root, data):
    manifest, option, records, refused = data.draw(manifests(root))
    (root / "manifest.csv").write_bytes(manifest)
    lake = tempfile.mkdtemp(dir=root.parent)
    options = {"encoding": option} if option else {}
    try:
        try:
            summary = ingest(lake, "fz", ADAPTERS["csv"](root, **options), CONFIG)
        except ConfigError:
            assert refused
            TALLY["manifests refused with one ConfigError"] += 1
            return
        assert not refused
        TALLY["manifests"] += 1
        TALLY["manifest rows"] += records
        _check_lake(lake, summary, records, lambda: ADAPTERS["csv"](root, **options))
    finally:
        shutil.rmtree(lake)


# -- generated file names -----------------------------------------------------------------
_WORDS = st.text(st.sampled_from("abcé ü-_.,'\"日😀"), min_size=1, max_size=10)
_NAME_BYTES = st.one_of(
    st.binary(min_size=1, max_size=12),                        # any bytes (controls included)
    _WORDS.map(lambda text: text.encode("utf-8")),              # UTF-8, as a modern system writes
    _WORDS.map(lambda text: text.encode("latin-1", "replace")),  # latin-1, as an old archive did
).map(lambda name: name.replace(b"/", b"_").replace(b"\x00", b"_"))  # the two bytes no name holds
_SUFFIXES = st.sampled_from([b".wav", b".WAV", b".flac", b".txt", b""])
_CONTENT = st.sampled_from(["audio", "audio", "audio", "copy", "garbage", "empty", "folder"])


@FUZZ
@given(files=st.lists(st.tuples(st.sampled_from([b"real", b"fake/gen"]), _NAME_BYTES, _SUFFIXES, _CONTENT),
                      min_size=1, max_size=6, unique_by=lambda f: f[1] + f[2]))
def test_generated_file_names_give_one_clip_or_reject_per_file(root, files):
    corpus = Path(tempfile.mkdtemp(dir=root.parent))
    lake = str(corpus / ".lake")
    wav = (root / "a.wav").read_bytes()
    try:
        inputs = 0
        for index, (folder, stem, suffix, content) in enumerate(files):
            name = stem + suffix
            if name in {b".", b".."}:
                continue
            where = os.fsencode(corpus) + b"/" + folder
            os.makedirs(where, exist_ok=True)
            path = where + b"/" + name
            if content == "folder":  # a folder named like the file, audio inside
                os.makedirs(path, exist_ok=True)
                with open(path + b"/inner.wav", "wb") as handle:
                    handle.write(wav[:60] + bytes([index]) + wav[61:])
                inputs += 2 if os.fsdecode(suffix).lower() in {".wav", ".flac"} else 1
                continue
            body = {"audio": wav[:60] + bytes([index]) + wav[61:], "copy": wav, "empty": b"",
                    "garbage": bytes(range(256)) * 2}[content]
            with open(path, "wb") as handle:
                handle.write(body)
            inputs += 1
        summary = ingest(lake, "fz", ADAPTERS["folder"](corpus), CONFIG)
        TALLY["file names"] += inputs
        TALLY["file names not UTF-8"] += sum(not _is_utf8(f[1] + f[2]) for f in files)
        _check_lake(lake, summary, inputs, lambda: ADAPTERS["folder"](corpus))
    finally:
        shutil.rmtree(corpus)


def _is_utf8(name: bytes) -> bool:
    try:
        name.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _check_lake(lake: str, summary: IngestSummary, inputs: int, entries: Callable[[], Iterable[CorpusEntry]]
                ) -> None:
    """Every input once, as a clip or a reject with a known reason; a re-run adds nothing."""
    assert summary.clips + summary.rejects == inputs
    clips = Lake(lake).read("clips", columns=["source_uri", "clip_id", "content_sha256"])
    rejects = Lake(lake).read("rejects", columns=["source_uri", "reason", "detail"])
    sources = clips.column("source_uri").to_pylist() + rejects.column("source_uri").to_pylist()
    assert len(sources) == len(set(sources)) == inputs
    assert len(set(clips.column("clip_id").to_pylist())) == clips.num_rows == summary.clips
    assert set(rejects.column("reason").to_pylist()) <= REASONS
    assert all(detail for detail in rejects.column("detail").to_pylist())
    for uri, sha in zip(clips.column("source_uri").to_pylist(), clips.column("content_sha256").to_pylist()):
        assert hashlib.sha256(read_source(uri)).hexdigest() == sha
    TALLY["clips"] += summary.clips
    TALLY.update(f"rejected: {reason}" for reason in rejects.column("reason").to_pylist())
    again = ingest(lake, "fz", entries(), CONFIG)
    assert (again.clips, again.rejects, again.skipped) == (0, 0, inputs)
