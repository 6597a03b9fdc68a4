"""``prefect.yaml``: every deployment imports, takes its parameters, runs on schedule, registers.

Each deployment in the file is checked the way Prefect itself will use it: the entrypoint is
loaded with ``load_flow_from_entrypoint``, its parameters (after the ``{{ $VAR }}``
substitution ``prefect deploy`` does) are validated against the flow's signature, schedules
are parsed by Prefect's ``CronSchedule``, ``prefect deploy`` registers each of them on a real
(ephemeral) Prefect server, and a run of the nightly scoring deployment is executed by a
``prefect worker`` process exactly as in production (pull step, entrypoint, JSON parameters).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml
from audio_helpers import speak
from prefect.flows import load_flow_from_entrypoint
from prefect.utilities.templating import apply_values

REPO = Path(__file__).resolve().parents[2]
PROJECT_FILE = REPO / "prefect.yaml"
WORK_POOL = "dfpipe"
DEPLOY_ENV = {"DFPIPE_CHECKPOINT": "/lake/checkpoints/run/epoch-050.pt"}
"""The environment ``prefect deploy`` runs in (the variables prefect.yaml reads)."""
DEPLOY_TIMEOUT_S = 300
WORKER_TIMEOUT_S = 300
BIN = Path(sys.executable).parent  # the venv's prefect script
MAX_DEPLOYMENTS = 100  # read back at most this many (the file has a handful)


def project() -> dict[str, Any]:
    return yaml.safe_load(PROJECT_FILE.read_text())


def as_deployed(deployment: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """``deployment`` with ``{{ $VAR }}`` filled in from ``DEPLOY_ENV``, as ``prefect deploy`` does."""
    for name, value in DEPLOY_ENV.items():
        monkeypatch.setenv(name, value)
    return apply_values(deployment, {}, remove_notset=False)


DEPLOYMENTS = project()["deployments"]


def test_the_project_file_has_the_deployments_and_a_pull_step():
    assert [d["name"] for d in DEPLOYMENTS] == ["nightly-archive-scoring", "study"]
    # Workers run the flows from the checkout or image named by DFPIPE_HOME (read at run time).
    assert project()["pull"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $DFPIPE_HOME }}"}}]


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=lambda d: d["name"])
def test_entrypoint_imports_and_accepts_the_parameters(deployment, monkeypatch):
    deployed = as_deployed(deployment, monkeypatch)
    path, function = deployed["entrypoint"].split(":")
    flow = load_flow_from_entrypoint(f"{REPO / path}:{function}")
    parameters = deployed["parameters"]
    schema = flow.parameters
    assert not set(parameters) - set(schema.properties), "parameters the flow does not take"
    # A scheduled run has nobody to supply a missing required parameter.
    assert not set(schema.required) - set(parameters), "required parameters the deployment leaves out"
    assert "{{" not in yaml.safe_dump(parameters), "a {{ $VAR }} that DEPLOY_ENV does not set"
    flow.validate_parameters(parameters)  # raises ParameterTypeError, naming each bad value
    assert deployed["work_pool"]["name"] == WORK_POOL


def test_nightly_scoring_schedule_parses_and_fires_once_a_day():
    from prefect.server.schemas.schedules import CronSchedule

    (deployment,) = [d for d in DEPLOYMENTS if d["name"] == "nightly-archive-scoring"]
    (schedule,) = deployment["schedules"]
    assert schedule["active"] is True
    cron = CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"])  # raises on a bad cron string
    dates = asyncio.run(cron.get_dates(n=3))
    assert [later - earlier for earlier, later in itertools.pairwise(dates)] == [timedelta(days=1)] * 2


def deploy_env(home: Path, **extra: str) -> dict[str, str]:
    """This environment without Prefect settings, pointed at the test server, plus ``extra``."""
    from prefect.settings import PREFECT_API_URL

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_API_URL=PREFECT_API_URL.value(), PREFECT_HOME=str(home),
               PREFECT_SERVER_ANALYTICS_ENABLED="false", **extra)
    return env


@pytest.fixture(scope="module")
def project_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch copy of the project as a worker sees it (``prefect deploy`` may write next to
    prefect.yaml; the package with its flows is a link to the real one)."""
    root = tmp_path_factory.mktemp("project")
    shutil.copy(PROJECT_FILE, root / "prefect.yaml")
    for folder in ("dfpipe", "studies"):
        (root / folder).symlink_to(REPO / folder, target_is_directory=True)
    return root


@pytest.fixture(scope="module")
def registered(prefect_server: None, project_dir: Path) -> tuple[dict[str, Any], str]:
    """Every deployment of prefect.yaml registered by ``prefect deploy`` on the test server.

    Returns ``({name: deployment as the server has it}, prefect deploy's output)``.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.client.schemas.sorting import DeploymentSort

    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=WORK_POOL, type="process"), overwrite=True)
    # One `prefect deploy --name` per deployment, not `--all`: with FastAPI >= 0.151 the Prefect
    # 3.8.8 server answers 422 to the explicit nulls its own client sends, so `prefect deploy`
    # registers a deployment, then fails listing the pool's workers
    # (/work_pools/<pool>/workers/filter) and stops. Only that failure is tolerated
    # (fastapi<0.151 has none); the server's state is what the tests check.
    output = ""
    for deployment in DEPLOYMENTS:
        result = subprocess.run(
            [str(BIN / "prefect"), "--no-prompt", "deploy", "--name", deployment["name"]], check=False,
            cwd=project_dir, env=deploy_env(project_dir / "home", **DEPLOY_ENV), capture_output=True,
            text=True, timeout=DEPLOY_TIMEOUT_S)
        output += result.stdout + result.stderr
        assert result.returncode == 0 or "/workers/filter" in output, output
    with get_client(sync_client=True) as client:  # explicit limit and sort: no nulls, as above
        found = client.read_deployments(limit=MAX_DEPLOYMENTS, sort=DeploymentSort.NAME_ASC)
    return {d.name: d for d in found}, output


@pytest.mark.slow
def test_prefect_deploy_registers_every_deployment(registered, monkeypatch):
    found, output = registered
    assert set(found) == {d["name"] for d in DEPLOYMENTS}, output
    for deployment in DEPLOYMENTS:
        expected, actual = as_deployed(deployment, monkeypatch), found[deployment["name"]]
        assert actual.entrypoint == expected["entrypoint"]
        assert actual.parameters == expected["parameters"]
        assert actual.work_pool_name == WORK_POOL
        assert [(s.schedule.cron, s.schedule.timezone, s.active) for s in actual.schedules] == [
            (s["cron"], s["timezone"], s["active"]) for s in expected.get("schedules", [])]
        assert actual.pull_steps == project()["pull"]


@pytest.mark.slow
def test_nightly_scoring_runs_on_a_process_worker(registered, project_dir, checkpoint, tmp_path):
    """A run of the deployment, picked up by ``prefect worker start`` as in production."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    archive = tmp_path / "archive"
    archive.mkdir()
    for name in ("a", "b"):
        speak(archive / f"{name}.wav", f"Archived call {name}, recorded for the nightly scoring test.")
    (archive / "broken.wav").write_bytes(b"RIFF but no audio")
    out = tmp_path / "scores"
    deployment = registered[0]["nightly-archive-scoring"]
    flow_run = run_deployment(deployment.id, timeout=0, parameters={
        "archive": [str(archive)], "checkpoint": checkpoint, "out": str(out), "device": "cpu"})
    # DFPIPE_HOME is what the pull step reads: the worker runs the flow from there.
    worker = subprocess.run(
        [str(BIN / "prefect"), "worker", "start", "--pool", WORK_POOL, "--type", "process", "--run-once"],
        check=False, cwd=tmp_path, env=deploy_env(tmp_path / "home", DFPIPE_HOME=str(project_dir)),
        capture_output=True, text=True, timeout=WORKER_TIMEOUT_S)
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(flow_run.id).state
    assert state is not None and state.is_completed(), f"{state}\n{worker.stdout}\n{worker.stderr}"
    scores = pq.read_table(out / "scores")
    assert sorted(Path(p).name for p in scores.column("path").to_pylist()) == ["a.wav", "b.wav"]
    assert pq.read_table(out / "rejects").column("source_uri").to_pylist() == [str(archive / "broken.wav")]
