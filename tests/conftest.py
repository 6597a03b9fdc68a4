"""Session-wide fixtures: one ephemeral Prefect server per test run, shared corpora."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile

import pytest

# A Prefect home of this session's own, set before anything imports prefect: its databases and
# the dfpipe server that the first CLI command starts in the background (dfpipe/flows/server.py)
# stay apart from the user's and from other sessions', and that server is stopped at the end.
PREFECT_HOME = os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="dfpipe-tests-prefect-")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def _session_prefect_home():
    """Stop the session's dfpipe server (if a command started one) and remove its Prefect home."""
    yield
    from dfpipe.flows.server import stop_server

    stop_server()
    shutil.rmtree(PREFECT_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def prefect_server():
    """Start Prefect's ephemeral server once (about 10 s) for every test that runs a flow."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def demo_corpus_small():
    """The demo corpus, ``--size small``, seed 0: about 200 real-speech and TTS clips
    (dfpipe/corpora/demo). Built at most once per machine into
    ``$DFPIPE_CACHE/demo-small-seed0`` (default ``~/.cache/dfpipe``); later sessions get a
    cache hit. Returns the corpus folder (a ``pathlib.Path`` holding ``manifest.csv``)."""
    import concurrent.futures
    import multiprocessing
    from pathlib import Path

    from dfpipe.corpora.demo import build_demo_corpus, cached_build

    out = Path(os.environ.get("DFPIPE_CACHE", Path.home() / ".cache" / "dfpipe")) / "demo-small-seed0"
    out.parent.mkdir(parents=True, exist_ok=True)
    # One builder at a time: parallel test workers (pytest -n) wait for the first one's build.
    with open(out.parent / "demo-small-seed0.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if cached_build(out, "small", 0) is None:
            spawn = multiprocessing.get_context("spawn")  # no fork of a process that may hold threads
            with concurrent.futures.ProcessPoolExecutor(2, mp_context=spawn) as pool:
                build_demo_corpus(out, "small", 0, executor=pool)
    return out
