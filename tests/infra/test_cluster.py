"""The stage flows on real infrastructure: a Dask scheduler, two Dask workers, a Prefect server.

Everything runs on loopback as separate processes, as on a cluster: ``dask scheduler``
(writing a scheduler file), two ``dask worker --nthreads 1`` (each under its nanny) and
``prefect server start`` on its own SQLite database. The ``dfpipe`` CLI runs in a subprocess
with ``--dask-address tcp://127.0.0.1:PORT`` and ``PREFECT_API_URL=http://127.0.0.1:PORT/api``,
exactly as a user would: ingest -> condition -> features, then score-archive over the corpus
folder with a real-format Mel-CNN checkpoint (random weights, ``conftest.py``). Every table
must hold the same rows as after the same commands on the default set-up (a LocalCluster and
Prefect's ephemeral server). Then the faults:

- a Dask worker process SIGKILLed while the conditions, features or score-archive stage is
  running: no row is lost and none duplicated (the scheduler re-runs the lost task elsewhere
  and every stage is idempotent per shard);
- the scheduler SIGKILLed mid-stage (a cluster of its own, started last): the command fails
  with one clear line and no traceback, and the re-run on a new scheduler completes with the
  same rows.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from dfpipe.cli import main
from dfpipe.config import LABELS
from dfpipe.lake import Lake

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent  # the venv's dask, prefect and dfpipe scripts
LOOPBACK = "127.0.0.1"
STARTUP_TIMEOUT_S = 180.0  # prefect server start takes ~10 s idle, much more on a busy machine
STAGE_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 20.0
POLL_S = 0.05

CORPUS = "cluster"
PER_LABEL = 10  # demo corpus clips per label: enough shards to kill a worker mid-stage
CONDITIONS = ("flac", "corrupt+mp3_64k")
FEATURES_CONDITION = "corrupt+mp3_64k"  # a lossy, randomly corrupted condition: the hardest to repeat
STAGE_OPTIONS = {  # the same options in every run, so shards and batches are cut the same way
    "ingest": ["--files-per-shard", "4"],
    "condition": ["--clips-per-shard", "1"],  # one clip per shard: many shards in flight
    "features": ["--clips-per-shard", "4"],
}
KILL_AFTER_SHARDS = 3
"""The worker is killed once this many ``audio`` shards are committed (and most are not)."""

SORT_TYPES = (pa.types.is_string, pa.types.is_integer, pa.types.is_floating)
STAGE_TABLES = ("clips", "rejects", "audio", "features")
LOGIT_RTOL = 1e-5
"""score-archive batches windows in the order decoding tasks finish, so a file's windows may
share a forward pass with different neighbours: float32 logits then differ in the last bits."""


# -- processes ----------------------------------------------------------------------------
@dataclass
class Service:
    """A long-running process in its own process group, logging to a file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.name} (exit {self.process.poll()}) ---\n" + "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM the whole group, then SIGKILL what is left after ``STOP_TIMEOUT_S``."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            try:
                self.process.wait(STOP_TIMEOUT_S)
                return
            except subprocess.TimeoutExpired:
                continue


def start(name: str, command: list[str], workdir: Path, env: dict[str, str]) -> Service:
    log = workdir / f"{name}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=sink,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    return Service(name, process, log)


def wait_for(ready: Callable[[], bool], what: str, services: list[Service],
             timeout_s: float = STARTUP_TIMEOUT_S) -> None:
    """Poll ``ready`` until true; fail with the services' logs on timeout or if one exits."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        dead = [s for s in services if s.process.poll() is not None]
        if dead or time.monotonic() > deadline:
            why = f"{', '.join(s.name for s in dead)} exited" if dead else f"not within {timeout_s:.0f} s"
            pytest.fail(f"waiting for {what}: {why}\n" + "\n".join(s.tail() for s in services))
        time.sleep(POLL_S * 4)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def http_json(url: str, body: dict | None = None) -> object:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def healthy(api_url: str) -> bool:
    try:
        return http_json(f"{api_url}/health") is True
    except (OSError, urllib.error.URLError, ValueError):
        return False


def scheduler_address(scheduler_file: Path) -> str | None:
    """The address in a scheduler file, or ``None`` while it is missing or half written."""
    try:
        return json.loads(scheduler_file.read_text())["address"]
    except (OSError, ValueError, KeyError):
        return None


def clean_env(prefect_home: Path, **extra: str) -> dict[str, str]:
    """This environment without Prefect/dfpipe settings, plus a private PREFECT_HOME and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DFPIPE_"))}
    env.update(PREFECT_HOME=str(prefect_home), PREFECT_SERVER_ANALYTICS_ENABLED="false", **extra)
    return env


@dataclass(frozen=True)
class Infra:
    api_url: str
    dask_address: str
    cli_env: dict[str, str]


def start_dask(root: Path, services: list[Service], prefix: str = "") -> tuple[str, Service]:
    """A Dask scheduler and two single-threaded workers (each under its nanny) on loopback,
    appended to ``services``; returns the scheduler's address and its service."""
    from distributed import Client

    scheduler_file = root / f"{prefix}scheduler.json"
    scheduler = start(f"{prefix}dask-scheduler", [
        str(BIN / "dask"), "scheduler", "--host", LOOPBACK, "--port", "0", "--no-dashboard",
        "--scheduler-file", str(scheduler_file),
    ], root, clean_env(root / f"{prefix}scheduler-home"))
    services.append(scheduler)
    wait_for(lambda: scheduler_address(scheduler_file) is not None, "the scheduler file", services)
    for i in range(2):
        # Workers get no PREFECT_API_URL: the flow's settings travel with each task.
        services.append(start(f"{prefix}dask-worker-{i}", [
            str(BIN / "dask"), "worker", "--scheduler-file", str(scheduler_file), "--host", LOOPBACK,
            "--nthreads", "1", "--no-dashboard", "--name", f"{prefix}w{i}",
        ], root, clean_env(root / f"{prefix}worker-{i}-home")))
    address = scheduler_address(scheduler_file)
    assert address is not None
    with Client(address, timeout=STARTUP_TIMEOUT_S) as client:
        wait_for(lambda: len(client.scheduler_info()["workers"]) == 2, "two Dask workers", services)
    return address, scheduler


@pytest.fixture(scope="module")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    """A Prefect server and a Dask scheduler with two single-threaded workers, all on loopback."""
    root = tmp_path_factory.mktemp("infra")
    port = free_port()
    api_url = f"http://{LOOPBACK}:{port}/api"
    services: list[Service] = []
    try:
        services.append(start("prefect-server", [
            str(BIN / "prefect"), "server", "start", "--host", LOOPBACK, "--port", str(port), "--no-ui",
        ], root, clean_env(root / "server-home")))
        address, _ = start_dask(root, services)
        wait_for(lambda: healthy(api_url), f"{api_url}/health", services)
        yield Infra(api_url, address, clean_env(root / "client-home", PREFECT_API_URL=api_url))
    finally:
        for service in reversed(services):
            service.stop()


# -- the corpus and the stages ------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus(demo_corpus_small: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``PER_LABEL`` clips per label of the demo corpus (real speech and TTS, every split and
    generator family), copied with their manifest rows, plus one broken file."""
    root = tmp_path_factory.mktemp("corpus")
    with (demo_corpus_small / "manifest.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = sorted(reader, key=lambda row: row["path"])
        columns = list(reader.fieldnames or [])
    chosen = []
    for label in LABELS:  # evenly spaced over the sorted manifest: a bit of everything
        of_label = [row for row in rows if row["label"] == label]
        chosen += of_label[:: len(of_label) // PER_LABEL][:PER_LABEL]
    for row in chosen:
        (root / row["path"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(demo_corpus_small / row["path"], root / row["path"])
    (root / "broken.wav").write_bytes(b"RIFF not really a wave file")
    chosen.append({**dict.fromkeys(columns, ""), "path": "broken.wav", "label": "spoof", "split": "train"})
    with (root / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(chosen)
    return root


def stage_args(lake: Path, corpus: Path, checkpoint: str) -> dict[str, list[str]]:
    """CLI arguments of every stage, in order (the Dask options are added by the caller).

    score-archive scores the corpus folder itself (manifest.csv and broken.wav are rejects)
    into ``scores_dir(lake)``.
    """
    common = ["--lake", str(lake), "--corpus", CORPUS]
    return {
        "ingest": ["ingest", *common, "--format", "csv", *STAGE_OPTIONS["ingest"],
                   str(corpus / "manifest.csv")],
        "condition": ["condition", *common, "--conditions", ",".join(CONDITIONS),
                      *STAGE_OPTIONS["condition"]],
        "features": ["features", *common, "--condition", FEATURES_CONDITION, *STAGE_OPTIONS["features"]],
        "score-archive": ["score-archive", str(corpus), "--checkpoint", checkpoint,
                          "--out", str(scores_dir(lake))],
    }


def scores_dir(lake: Path) -> Path:
    return lake.parent / "archive-scores"


def dfpipe_command(args: list[str], address: str) -> list[str]:
    return [str(BIN / "dfpipe"), *args, "--dask-address", address]


def run_on_cluster(args: list[str], infra: Infra, address: str | None = None) -> str:
    result = subprocess.run(dfpipe_command(args, address or infra.dask_address), check=False, env=infra.cli_env,
                            capture_output=True, text=True, timeout=STAGE_TIMEOUT_S, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"dfpipe {args[0]} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def start_stage(args: list[str], infra: Infra, address: str) -> subprocess.Popen[str]:
    """The CLI of one stage, started in the background (stdout and stderr together)."""
    return subprocess.Popen(dfpipe_command(args, address), env=infra.cli_env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop_stage(stage: subprocess.Popen[str]) -> None:
    if stage.poll() is None:
        stage.kill()
        stage.wait()


@pytest.fixture(scope="module")
def local_lake(corpus: Path, checkpoint: str, tmp_path_factory: pytest.TempPathFactory,
               prefect_server: None) -> Path:
    """The reference: the same commands on the defaults (LocalCluster, ephemeral Prefect server)."""
    lake = tmp_path_factory.mktemp("local") / "lake"
    for args in stage_args(lake, corpus, checkpoint).values():
        result = CliRunner().invoke(main, [*args, "--workers", "2"])
        assert result.exit_code == 0, result.output
    return lake


@pytest.fixture(scope="module")
def cluster_lake(corpus: Path, checkpoint: str, infra: Infra,
                 tmp_path_factory: pytest.TempPathFactory) -> Path:
    lake = tmp_path_factory.mktemp("cluster") / "lake"
    for args in stage_args(lake, corpus, checkpoint).values():
        out = run_on_cluster(args, infra)
        assert f"wrote {lake.parent}" in out, out
    return lake


# -- comparing tables ---------------------------------------------------------------------
def sorted_rows(lake: Path, table: str) -> pa.Table:
    """All rows of ``table``, sorted by every string and number column (a canonical order)."""
    data = Lake(str(lake)).read(table)
    keys = [f.name for f in data.schema if any(is_type(f.type) for is_type in SORT_TYPES)]
    return data.sort_by([(key, "ascending") for key in keys])


def assert_same_rows(actual_lake: Path, expected_lake: Path, table: str) -> None:
    actual, expected = sorted_rows(actual_lake, table), sorted_rows(expected_lake, table)
    if actual.equals(expected):
        return
    same_length = actual.num_rows == expected.num_rows
    differing = [name for name in expected.column_names
                 if not (same_length and actual.column(name).equals(expected.column(name)))]
    pytest.fail(f"{table}: {actual.num_rows} rows vs {expected.num_rows} expected; "
                f"columns that differ: {differing}")


def archive_rows(lake: Path, kind: str) -> pa.Table:
    """score-archive's output ``kind`` (``scores`` or ``rejects``), sorted by file."""
    parts = sorted((scores_dir(lake) / kind).glob("*.parquet"))
    data = pa.concat_tables(pq.read_table(part) for part in parts)
    return data.sort_by("path" if kind == "scores" else "source_uri")


def assert_same_scores(actual_lake: Path, expected_lake: Path) -> None:
    assert archive_rows(actual_lake, "rejects").equals(archive_rows(expected_lake, "rejects"))
    actual, expected = archive_rows(actual_lake, "scores"), archive_rows(expected_lake, "scores")
    logits = [name for name in expected.column_names if name.startswith("spoof_logit")]
    assert actual.drop_columns(logits).equals(expected.drop_columns(logits))
    for name in logits:
        np.testing.assert_allclose(actual.column(name).to_numpy(), expected.column(name).to_numpy(),
                                   rtol=LOGIT_RTOL, err_msg=name)


def flow_runs(api_url: str) -> dict[str, list[str]]:
    """``{flow name: [state type of each run]}`` as recorded by the Prefect server."""
    flows = {f["id"]: f["name"] for f in http_json(f"{api_url}/flows/filter", {})}
    runs: dict[str, list[str]] = {}
    for run in http_json(f"{api_url}/flow_runs/filter", {"limit": 200}):
        runs.setdefault(flows[run["flow_id"]], []).append(run["state_type"])
    return runs


def duplicate_keys(lake: Path, table: str, keys: str) -> list[tuple]:
    return Lake(str(lake)).connect().execute(
        f"select {keys}, count(*) from {table} group by all having count(*) > 1").fetchall()


# -- the tests ----------------------------------------------------------------------------
def test_stages_on_a_real_cluster_write_the_same_rows_as_a_local_run(cluster_lake, local_lake, infra):
    for table in STAGE_TABLES:
        assert_same_rows(cluster_lake, local_lake, table)
    assert_same_scores(cluster_lake, local_lake)
    con = Lake(str(cluster_lake)).connect()
    clips = 2 * PER_LABEL
    assert con.execute("select count(*) from clips").fetchone() == (clips,)
    assert con.execute("select reason from rejects").fetchall() == [("undecodable",)]
    assert con.execute("select count(*) from audio").fetchone() == (clips * len(CONDITIONS),)
    assert con.execute("select count(*) from features").fetchone() == (clips,)
    assert archive_rows(cluster_lake, "scores").num_rows == clips
    rejected = archive_rows(cluster_lake, "rejects").column("source_uri").to_pylist()
    assert sorted(Path(p).name for p in rejected) == ["broken.wav", "manifest.csv"]
    # The runs went to the real server, not an ephemeral one, and all completed.
    runs = flow_runs(infra.api_url)
    assert set(runs) == {"ingest", "conditions", "features", "score-archive"}
    assert {state for states in runs.values() for state in states} == {"COMPLETED"}


KILLED_STAGES = {  # stage -> (lake tables it reads, its output, output parts committed before the kill)
    "condition": (("clips",), "audio", KILL_AFTER_SHARDS),
    "features": (("clips", "audio"), "features", 1),
    "score-archive": ((), "archive", 0),  # one part at the end: killed while files are decoded
}
FLOW_NAMES = {"condition": "conditions", "features": "features", "score-archive": "score-archive"}
OUTPUT_KEYS = {"audio": "clip_id, condition", "features": "clip_id, condition, frontend_version"}


def committed_parts(lake: Path, output: str) -> int:
    folder = scores_dir(lake) / "scores" if output == "archive" else Path(Lake(str(lake)).table_path(output))
    return len(list(folder.rglob("*.parquet")))


def assert_stage_output_matches(lake: Path, expected_lake: Path, output: str) -> None:
    """Every row exactly once: no duplicate key, the same rows as the reference run."""
    if output == "archive":
        scored = archive_rows(lake, "scores").column("path").to_pylist()
        assert len(scored) == len(set(scored))
        assert_same_scores(lake, expected_lake)
    else:
        assert duplicate_keys(lake, output, OUTPUT_KEYS[output]) == []
        assert_same_rows(lake, expected_lake, output)


@pytest.mark.parametrize("stage", list(KILLED_STAGES))
def test_a_worker_killed_mid_stage_loses_and_duplicates_no_row(stage, corpus, checkpoint, cluster_lake, local_lake,
                                                               infra, tmp_path):
    from distributed import Client

    inputs, output, parts_before_kill = KILLED_STAGES[stage]
    lake = tmp_path / "lake"
    for table in inputs:  # start from the cluster run's upstream tables
        shutil.copytree(cluster_lake / table, lake / table)
    with Client(infra.dask_address, timeout=STARTUP_TIMEOUT_S) as client:
        pids = client.run(os.getpid)  # worker address -> pid of the worker process (not its nanny)
        process = start_stage(stage_args(lake, corpus, checkpoint)[stage], infra, infra.dask_address)
        try:
            deadline = time.monotonic() + STAGE_TIMEOUT_S
            busy: list[str] = []
            while process.poll() is None and time.monotonic() < deadline and not busy:
                if committed_parts(lake, output) >= parts_before_kill:  # then kill a worker running a task
                    busy = [address for address, keys in sorted(client.processing().items()) if keys]
                time.sleep(POLL_S)
            at_kill = committed_parts(lake, output)
            assert process.poll() is None and busy, f"the stage ended before the kill:\n{process.stdout.read()}"
            os.kill(pids[busy[0]], signal.SIGKILL)  # its nanny starts a fresh worker process
            log, _ = process.communicate(timeout=STAGE_TIMEOUT_S)
        finally:
            stop_stage(process)
    assert process.returncode == 0, log
    assert at_kill < committed_parts(lake, output), "the kill came after the last part"
    assert_stage_output_matches(lake, local_lake, output)
    assert set(flow_runs(infra.api_url)[FLOW_NAMES[stage]]) == {"COMPLETED"}


def test_a_scheduler_killed_mid_stage_fails_in_one_line_and_a_rerun_completes(corpus, checkpoint, cluster_lake,
                                                                             local_lake, infra, tmp_path):
    """Last in this file: it starts (and kills) a scheduler of its own, with its own workers."""
    lake = tmp_path / "lake"
    shutil.copytree(cluster_lake / "clips", lake / "clips")
    condition = stage_args(lake, corpus, checkpoint)["condition"]
    services: list[Service] = []
    try:
        address, scheduler = start_dask(tmp_path, services, prefix="doomed-")
        process = start_stage(condition, infra, address)
        try:
            deadline = time.monotonic() + STAGE_TIMEOUT_S
            while (process.poll() is None and time.monotonic() < deadline
                   and committed_parts(lake, "audio") < KILL_AFTER_SHARDS):
                time.sleep(POLL_S)
            assert process.poll() is None, f"the stage ended before the kill:\n{process.stdout.read()}"
            os.killpg(scheduler.process.pid, signal.SIGKILL)
            log, _ = process.communicate(timeout=STAGE_TIMEOUT_S)
        finally:
            stop_stage(process)
        assert process.returncode == 1, log
        errors = [line for line in log.splitlines() if line.startswith("Error: ")]
        assert len(errors) == 1 and "Traceback" not in log, log
        assert address in errors[0] or "scheduler" in errors[0].lower(), errors[0]
    finally:
        for service in reversed(services):
            service.stop()
    assert committed_parts(lake, "audio") < 2 * PER_LABEL * len(CONDITIONS)

    services = []
    try:
        address, _ = start_dask(tmp_path, services, prefix="new-")
        run_on_cluster(condition, infra, address)
    finally:
        for service in reversed(services):
            service.stop()
    assert_stage_output_matches(lake, local_lake, "audio")
