"""The Prefect API a flow runs against, and the local Prefect server dfpipe keeps for it.

Every stage flow runs inside :func:`prefect_api`, which picks the API once, before the flow
starts, and puts its URL in the flow's Prefect settings. Those settings travel with every
task to the Dask workers, so the workers report their task runs to the flow's server instead
of each starting a temporary server of its own (about 230 MB each, orphaned when a worker
dies). The API, first match wins:

1. ``PREFECT_API_URL`` (environment, Prefect profile, or a test harness): used as it is;
   inside a flow (a sub-flow of the study), the parent flow's server.
2. The dfpipe server of ``$PREFECT_HOME`` (:func:`start_server`), when it runs.
3. ``$DFPIPE_PREFECT_SERVER=background`` (what the ``dfpipe`` command line sets): start that
   server now, in the background, and leave it running for later commands (the first
   command pays its start-up, about 10-20 s; ``dfpipe server stop`` ends it).
4. Otherwise (``temporary``, the default of a Python caller): Prefect's temporary server,
   for this process only.

The dfpipe server is ``prefect server start`` on a free loopback port, in a session of its
own (a Ctrl-C of the command that started it does not reach it), with its own SQLite
database. Its pid, port and log live in ``$PREFECT_HOME/dfpipe-server``
(:class:`~dfpipe.config.PrefectServerConfig`); a lock file there makes two commands
starting at once share one server.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from dfpipe.config import PREFECT_SERVER_ENV, PREFECT_SERVER_MODES, PrefectServerConfig
from dfpipe.errors import ConfigError, DfpipeError

DEFAULT_SERVER = PrefectServerConfig()
_RECORD = "server.json"


@dataclass(frozen=True)
class ServerRecord:
    """A started dfpipe server: its process (pid and start time, so a reused pid is not
    mistaken for it), its API URL, database and log."""

    pid: int
    started: float
    port: int
    api_url: str
    database: str
    log: str

    @property
    def ui_url(self) -> str:
        return self.api_url.removesuffix("/api")


def server_folder(config: PrefectServerConfig = DEFAULT_SERVER) -> Path:
    """``$PREFECT_HOME/<config.folder>``: the server's record, lock, database and log."""
    from prefect.settings import get_current_settings

    return Path(get_current_settings().home).expanduser() / config.folder


def running_server(config: PrefectServerConfig = DEFAULT_SERVER) -> ServerRecord | None:
    """The dfpipe server of ``$PREFECT_HOME`` if its process is alive (health not checked)."""
    record = _read(server_folder(config))
    return record if record is not None and _alive(record) else None


def start_server(config: PrefectServerConfig = DEFAULT_SERVER) -> tuple[ServerRecord, bool]:
    """The dfpipe server, started in the background unless it runs; waits until it answers.

    Returns:
        The server's record, and whether this call started it.

    Raises:
        DfpipeError: the server exited or did not answer within ``config.startup_timeout_s``
            (the message names its log).
    """
    folder = server_folder(config)
    with _locked(folder):
        record = _read(folder)
        if record is not None and _alive(record):
            _wait_healthy(record, config)
            return record, False
        port = _free_port(config.host)
        database, log = folder / "prefect.db", folder / "server.log"
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        env.update(PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{database}",
                   PREFECT_SERVER_ANALYTICS_ENABLED="false")
        with log.open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "prefect", "server", "start", "--host", config.host, "--port", str(port)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=folder,
                start_new_session=True)
        import psutil

        record = ServerRecord(pid=process.pid, started=psutil.Process(process.pid).create_time(), port=port,
                              api_url=f"http://{config.host}:{port}/api", database=str(database), log=str(log))
        (folder / _RECORD).write_text(json.dumps(asdict(record)))
        try:
            _wait_healthy(record, config)
        except BaseException:
            _stop(record, config)
            (folder / _RECORD).unlink(missing_ok=True)
            raise
        return record, True


def stop_server(config: PrefectServerConfig = DEFAULT_SERVER) -> ServerRecord | None:
    """End the dfpipe server and every process under it; returns its record (None: none ran)."""
    folder = server_folder(config)
    with _locked(folder):
        record = _read(folder)
        running = record is not None and _alive(record)
        if running:
            _stop(record, config)
        (folder / _RECORD).unlink(missing_ok=True)
        return record if running else None


def healthy(api_url: str, timeout_s: float = 1.0) -> bool:
    """Whether the Prefect API at ``api_url`` answers ``/health``."""
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout_s) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def prefect_api(config: PrefectServerConfig = DEFAULT_SERVER) -> Iterator[str]:
    """Run the block against one Prefect API, its URL in the block's settings (see the module
    docstring for the order); yields the URL."""
    from prefect.context import FlowRunContext
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    configured = get_current_settings().api.url
    if configured:
        yield configured
        return
    parent = FlowRunContext.get()
    if parent is not None and parent.client is not None:  # a sub-flow: its parent flow's server
        with temporary_settings(updates={PREFECT_API_URL: str(parent.client.api_url).rstrip("/")}):
            yield str(parent.client.api_url).rstrip("/")
        return
    mode = os.environ.get(PREFECT_SERVER_ENV) or "temporary"
    if mode not in PREFECT_SERVER_MODES:
        raise ConfigError(f"{PREFECT_SERVER_ENV}={mode!r}: expected one of {', '.join(PREFECT_SERVER_MODES)}")
    record = running_server(config)
    if record is None and mode == "background":
        record, started = start_server(config)
        if started:
            print(f"dfpipe: started a Prefect server at {record.ui_url} (pid {record.pid}) for this and later "
                  "commands; `dfpipe server stop` ends it", file=sys.stderr)
    if record is not None:
        _wait_healthy(record, config)
        url = record.api_url
    else:
        from prefect.server.api.server import SubprocessASGIServer

        server = SubprocessASGIServer()  # one per process: the one Prefect itself would start
        server.start()
        url = server.api_url
    with temporary_settings(updates={PREFECT_API_URL: url}):
        yield url


def _read(folder: Path) -> ServerRecord | None:
    try:
        return ServerRecord(**json.loads((folder / _RECORD).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _alive(record: ServerRecord) -> bool:
    import psutil

    try:
        process = psutil.Process(record.pid)
        return process.create_time() == record.started and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _wait_healthy(record: ServerRecord, config: PrefectServerConfig) -> None:
    deadline = time.monotonic() + config.startup_timeout_s
    while not healthy(record.api_url):
        if not _alive(record):
            raise DfpipeError(f"the Prefect server (pid {record.pid}) exited while starting; see {record.log}")
        if time.monotonic() > deadline:
            raise DfpipeError(f"the Prefect server at {record.api_url} did not answer within "
                              f"{config.startup_timeout_s:g} s; see {record.log} (`dfpipe server stop` ends it)")
        time.sleep(0.2)


def _stop(record: ServerRecord, config: PrefectServerConfig) -> None:
    """SIGTERM the server and its descendants, SIGKILL what is left after ``stop_timeout_s``."""
    import psutil

    try:
        server = psutil.Process(record.pid)
        processes = [server, *server.children(recursive=True)]
    except psutil.Error:
        return
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.terminate()
    _, left = psutil.wait_procs(processes, timeout=config.stop_timeout_s)
    for process in left:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(left, timeout=config.stop_timeout_s)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
