"""``dfpipe server`` and the fixed cost of a command: one local Prefect server, started once and
reused; LocalCluster workers reporting their task runs to it; nothing left running after
``dfpipe server stop``; expected errors as one line on stderr, exit 1.

Every command runs as a user runs it: ``dfpipe`` in a subprocess, with a Prefect home of its
own and no PREFECT_API_URL, so the first flow starts the server in the background.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
import pytest
from ingest_fixtures import tone

DFPIPE = str(Path(sys.executable).with_name("dfpipe"))
MARK = "DFPIPE_TEST_SERVER_MARK"
"""Set in the commands' environment: every process they start inherits it, so a process left
over after ``dfpipe server stop`` is found whoever its parent became."""


def marked_processes(mark: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get(MARK) == mark:
                found.append(process)
        except psutil.Error:
            continue
    return found


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory):
    """A private Prefect home and a 2-file folder corpus; at the end, the server is stopped
    and no process of these commands may be left."""
    root = tmp_path_factory.mktemp("server")
    tone(root / "corpus" / "real" / "a.wav", 300)
    tone(root / "corpus" / "fake" / "tts" / "b.wav", 500)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PREFECT_HOME=str(root / "prefect"), **{MARK: uuid.uuid4().hex})
    yield root, env
    subprocess.run([DFPIPE, "server", "stop"], env=env, check=False, capture_output=True)
    assert marked_processes(env[MARK]) == []


def dfpipe(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DFPIPE, *args], env=env, capture_output=True, text=True, check=False)


def test_one_server_for_every_command_and_its_workers_then_nothing_left(home):
    root, env = home
    ingest = ["ingest", "--lake", str(root / "lake"), "--corpus", "c", "--format", "folder", str(root / "corpus")]
    # two shards on a LocalCluster of one worker (in-process-shards 0 forces the cluster)
    first = dfpipe(env, *ingest, "--files-per-shard", "1", "--in-process-shards", "0", "--workers", "1")
    assert first.returncode == 0, first.stderr
    assert "started a Prefect server" in first.stderr and "2 clips and 0 rejects added" in first.stdout
    record = json.loads((root / "prefect" / "dfpipe-server" / "server.json").read_text())

    status = dfpipe(env, "server", "status")
    assert status.returncode == 0 and f"running at http://127.0.0.1:{record['port']}" in status.stdout
    again = dfpipe(env, *ingest)  # one shard planned (nothing new): in this process, same server
    assert again.returncode == 0 and "started" not in again.stderr and "2 inputs already" in again.stdout
    assert dfpipe(env, "server", "start").stdout.startswith(f"Prefect server already running at "
                                                           f"http://127.0.0.1:{record['port']} (pid {record['pid']})")

    # the worker's task runs are in the flow's server, none in a server of the worker's own
    with_api = {**env, "PREFECT_API_URL": record["api_url"]}
    runs = subprocess.run([sys.executable, "-c", _TASK_RUNS], env=with_api, capture_output=True, text=True,
                          check=True)
    assert json.loads(runs.stdout) == [["ingest", [["probe_shard", "COMPLETED"]] * 2], ["ingest", []]]

    stop = dfpipe(env, "server", "stop")
    assert stop.returncode == 0 and f"pid {record['pid']}" in stop.stdout
    assert marked_processes(env[MARK]) == []  # the server, its children, no per-worker server
    assert dfpipe(env, "server", "status").returncode == 1


_TASK_RUNS = """
import asyncio, json
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

async def main():
    async with get_client() as client:
        flows = {flow.id: flow.name for flow in await client.read_flows()}
        out = []
        for run in sorted(await client.read_flow_runs(), key=lambda run: run.start_time):
            tasks = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
            out.append([flows[run.flow_id], sorted([t.name.rsplit("-", 1)[0], t.state_type.value] for t in tasks)])
        print(json.dumps(out))

asyncio.run(main())
"""


def test_expected_errors_print_one_line_and_exit_1(home, tmp_path):
    _, env = home
    (tmp_path / "asv").mkdir()
    (tmp_path / "m.csv").write_text("file,lbl\nx.wav,bonafide\n")
    (tmp_path / "f.wav").write_bytes(b"")
    cases = {"asvspoof5": (tmp_path / "asv", "no Track 1 protocol file"),
             "csv": (tmp_path / "m.csv", "missing column(s)"),
             "folder": (tmp_path / "f.wav", "f.wav")}
    for corpus_format, (path, says) in cases.items():
        result = dfpipe(env, "ingest", "--lake", str(tmp_path / "lake"), "--corpus", "x", "--format",
                        corpus_format, str(path))
        lines = [line for line in result.stderr.splitlines() if "started a Prefect server" not in line]
        assert result.returncode == 1, result.stderr
        assert len(lines) == 1 and lines[0].startswith("Error: ") and says in lines[0], result.stderr
        assert result.stdout == ""
