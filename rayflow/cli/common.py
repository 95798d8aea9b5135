"""What every ``rayflow`` command shares: options, input parsing, exit codes, the error
guard, the process's service, and where the command runs (here, or on a server).

Owns ``Where`` (the ``--server``/``--token`` of the command line, or $RAYFLOW_SERVER and
$RAYFLOW_TOKEN through ``rayflow.core.config``) and the ``guard`` that turns rayflow
errors into one line and the documented exit code. Light at import: no service, no
planner, no httpx (the remote commands' path loads only the client), no ray.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from typing import Any

import click

from rayflow.core import config
from rayflow.core.errors import (
    ComponentNotFound,
    ConfigError,
    NotResumable,
    RayflowError,
    RunBusy,
    RunNotFound,
    SpecError,
    WorkflowFailed,
)
from rayflow.core.paths import check_run_id
from rayflow.core.redact import has_secret
from rayflow.core.states import RunStatus

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


@dataclass(frozen=True)
class Where:
    """A command's server (None: run here) and its token. ``repr`` never shows the token."""

    url: str | None = None
    token: str | None = None
    auto: bool = False               # found by probing 127.0.0.1, not asked for

    def __repr__(self) -> str:
        return f"Where(url={self.url!r}, token={'<set>' if self.token else None}, auto={self.auto})"

    def client(self) -> Any:
        from rayflow.client import Client

        return Client(self.url, self.token or "")


def where(ctx: click.Context) -> Where:
    """The ``Where`` the group's options made (``cli`` stores it in ``ctx.obj``)."""
    found = ctx.find_object(Where)
    return found if found is not None else Where()


def parse_inputs(pairs: tuple[str, ...]) -> dict[str, Any]:
    from rayflow.spec.loading import parse_value  # YAML within the spec's limits (depth, aliases)

    inputs: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected key=value, got {pair!r}", param_hint="-i/--input")
        inputs[key] = parse_value(raw, name=f"input {key!r}") if raw else ""
    return inputs


def _usage_error(exc: RayflowError) -> bool:
    """A refused token is the caller's to fix, like a bad option (exit 2)."""
    errors = sys.modules.get("rayflow.client.errors")
    return errors is not None and isinstance(exc, errors.ClientAuthError)


# what the user gave, or the state of a run, is wrong (exit 2): an invalid spec, a bad
# setting, an unknown run, a run another process drives or an id taken (RunBusy and its
# RunExists), a run that cannot be resumed
USAGE_ERRORS = (SpecError, ConfigError, RunNotFound, ComponentNotFound, RunBusy, NotResumable)


def _line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def failure_message(exc: WorkflowFailed) -> str:
    """``failed: <one line>``, then the first failure's traceback and log tail as they are."""
    first, _, detail = str(exc).partition("\n")
    return f"failed: {_line(first)}" + (f"\n{detail}" if detail else "")


def guard(fn):
    """Turn rayflow errors into one line on stderr and the documented exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except USAGE_ERRORS as exc:
            click.echo(f"error: {_line(exc)}", err=True)
            sys.exit(EXIT_USAGE)
        except WorkflowFailed as exc:
            click.echo(failure_message(exc), err=True)
            sys.exit(EXIT_FAILED)
        except RayflowError as exc:
            click.echo(f"error: {_line(exc)}", err=True)
            sys.exit(EXIT_USAGE if _usage_error(exc) else EXIT_FAILED)

    return wrapper


def service() -> Any:
    """The process's Service, with the composition root (``rayflow.api``) loaded: it wires
    the cluster's run host, as ``import rayflow`` of old did for every command."""
    import rayflow.api  # noqa: F401 - the composition root registers the run host at import
    from rayflow.service import get_service

    return get_service()


def configure(store: str | None, address: str | None) -> Any:
    svc = service()
    svc.configure(store=store, address=address)
    return svc


def refuse_with_server(ctx: click.Context, *names: str) -> None:
    """UsageError for options given on the command line that a server decides for itself."""
    given = [n for n in names if ctx.get_parameter_source(n) == click.core.ParameterSource.COMMANDLINE]
    if given:
        opts = ", ".join(f"--{n.replace('_', '-')}" for n in given)
        raise click.UsageError(f"{opts}: the server decides this with --server; drop one of them")


target_arg = click.argument("target", metavar="TARGET")
input_opt = click.option("-i", "--input", "inputs", multiple=True, metavar="KEY=VALUE",
                         help="A workflow input; VALUE is read as YAML (100, true, [1,2], text). Repeatable.")
def _warn_store_password(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """--store with a password: it works, with one line on stderr (a command line is public)."""
    if value and has_secret(value):
        click.echo("warning: --store holds a password, which any user of this machine can read in the process "
                   "list; set RAYFLOW_STORE instead, or leave it out of the URL and use PGPASSWORD or ~/.pgpass",
                   err=True)
    return value


store_opt = click.option("--store", metavar="URL", callback=_warn_store_password,   # unset: $RAYFLOW_STORE
                         help="Run store URL (default $RAYFLOW_STORE or sqlite:///~/.rayflow/rayflow.db); "
                              "a password in it is better in $RAYFLOW_STORE, PGPASSWORD or ~/.pgpass.")
address_opt = click.option("--address", envvar="RAY_ADDRESS", metavar="ADDR",
                           help="Ray cluster to join: 'auto', 'ray://host:10001', host:port (default: local Ray).")
json_opt = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
status_opt = click.option("--status", "status_filter", metavar="STATE",
                          type=click.Choice([*(s.value for s in RunStatus), "RESUMABLE"], case_sensitive=False),
                          help="Only runs in this state; RESUMABLE: not finished, and their driver "
                               "stopped heartbeating (it crashed or was killed).")
local_opt = click.option("--local", "force_local", is_flag=True,
                         help=f"Run here even when a rayflow server answers at {config.DEFAULT_SERVER_URL} "
                              "(without --server and $RAYFLOW_SERVER, run and submit use one that answers there).")


def valid_run_id(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """--run-id checked before anything else is done (exit 2 and one line when invalid)."""
    if value is not None:
        try:
            check_run_id(value, field="--run-id")
        except SpecError as exc:
            raise click.BadParameter(str(exc).removeprefix("--run-id "), param_hint="--run-id") from None
    return value
