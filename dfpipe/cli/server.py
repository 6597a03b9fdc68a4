"""``dfpipe server start|stop|status``: the local Prefect server the commands share.

The first command that runs a flow starts this server in the background when no Prefect API
is configured and none runs (about 10-20 s, once); every later command reuses it (under a
second). ``PREFECT_API_URL`` (environment or Prefect profile) wins over it. The mechanics are
:mod:`dfpipe.flows.server`.
"""

from __future__ import annotations

import click

from dfpipe.cli._common import friendly_errors


@click.group()
def server() -> None:
    """The local Prefect server that dfpipe's flows report to.

    Started by the first command that runs a flow (unless PREFECT_API_URL is set) and left
    running for the next ones; its database, log, pid and port live in
    $PREFECT_HOME/dfpipe-server. Open its URL in a browser to see the flow runs.

    \b
    Examples:
      dfpipe server start
      dfpipe server status
      dfpipe server stop
    """


@server.command()
@friendly_errors
def start() -> None:
    """Start the server in the background (or say where it already runs)."""
    from dfpipe.flows.server import start_server

    record, started = start_server()
    verb = "started" if started else "already running"
    click.echo(f"Prefect server {verb} at {record.ui_url} (pid {record.pid}); log {record.log}")


@server.command()
@friendly_errors
def stop() -> None:
    """Stop the server and every process under it."""
    from dfpipe.flows.server import stop_server

    record = stop_server()
    click.echo(f"stopped the Prefect server at {record.ui_url} (pid {record.pid})" if record
               else "no dfpipe Prefect server is running")


@server.command()
@friendly_errors
def status() -> None:
    """Say whether the server runs and where; exit 1 when it does not."""
    from prefect.settings import get_current_settings

    from dfpipe.flows.server import healthy, running_server, server_folder

    configured = get_current_settings().api.url
    if configured:
        click.echo(f"PREFECT_API_URL is set: flows report to {configured}")
    record = running_server()
    if record is None:
        click.echo(f"no dfpipe Prefect server is running (under {server_folder()})")
        raise SystemExit(1)
    state = "running" if healthy(record.api_url) else "starting (not answering yet)"
    click.echo(f"Prefect server {state} at {record.ui_url} (pid {record.pid}); database {record.database}; "
               f"log {record.log}")
