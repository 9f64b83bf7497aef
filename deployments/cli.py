"""The ``tenantform`` command. ``up``, ``deploy`` and ``worker`` run the system; the rest
talk to a gateway over HTTP like any client (``TENANTFORM_URL``, ``API_KEY``; the key of
a local ``up`` is read from ``.tenantform/api-key`` when ``API_KEY`` is not set).

Exit codes: 0 done, 1 the gateway refused or the run failed, 2 bad usage or no gateway.
``--json`` prints the gateway's answer as JSON for scripts."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from flows.targets import by_cloud_provider

if TYPE_CHECKING:
    from flows.settings import Settings

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)
clients_app = typer.Typer(help="Clients in the registry.", no_args_is_help=True)
runs_app = typer.Typer(help="Runs: state, tasks, logs.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys (an admin key is needed).", no_args_is_help=True)
app.add_typer(clients_app, name="clients")
app.add_typer(runs_app, name="runs")
policy_app = typer.Typer(help="Plan policies (Rego): the built-ins and POLICY_DIR.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(policy_app, name="policy")
rollouts_app = typer.Typer(
    help="Rollouts: a module revision across a target's clients, in waves.", no_args_is_help=True
)
app.add_typer(rollouts_app, name="rollouts")
console = Console()


def _json_mode(as_json: bool) -> bool:
    """With ``--json`` stdout carries the JSON answer only: messages go to stderr."""
    console.stderr = console.stderr or as_json
    return as_json


JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print the answer as JSON (messages on stderr).", callback=_json_mode)
]
ENDED = ("completed", "failed", "cancelled")


# Running the system ------------------------------------------------------------------------
@app.command()
def up(
    host: Annotated[str, typer.Option(help="Gateway address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Gateway port.")] = 8000,
    prefect_port: Annotated[int, typer.Option(help="Prefect server port.")] = 4200,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="The data dir (default TENANTFORM_DATA_DIR, else .tenantform/; relative: to the"
            " current directory)."
        ),
    ] = None,
    worker_limit: Annotated[int, typer.Option(help="Flow runs the worker runs at once.")] = 4,
) -> None:
    """Start Prefect, a worker and the gateway on this machine."""
    from deployments.stack import StackConfig, run_up
    from flows.settings import get_settings

    settings = get_settings()
    raise typer.Exit(
        run_up(
            StackConfig(
                data_dir=(data_dir or settings.data_dir).resolve(),
                host=host,
                port=port,
                prefect_port=prefect_port,
                # Prefect's own setting, read as Prefect reads it: not one of ours.
                prefect_api_url=os.environ.get("PREFECT_API_URL") or None,
                api_key=settings.api_key.get_secret_value() if settings.api_key else None,
                worker_limit=worker_limit,
            )
        )
    )


@app.command()
def deploy() -> None:
    """Set up PREFECT_API_URL as `up` does: work pool, deployments, the missed-heartbeat
    automation, the fleet concurrency limit, the failure notifications (NOTIFY_*, SMTP_*)."""
    from deployments.apply import set_up_prefect

    for name, what in asyncio.run(set_up_prefect()).items():
        print(f"{name} {what}")


@app.command()
def worker(
    limit: Annotated[int, typer.Option(help="Flow runs this worker runs at once.")] = 2,
    pool: Annotated[str | None, typer.Option(help="Work pool (default: prefect.yaml's).")] = None,
    warm: Annotated[bool, typer.Option(help="Start the warm process beside it (see `warm`).")] = True,
) -> None:
    """A process worker with the project's settings, after checking what runs need."""
    from deployments.worker import WorkerConfig, run_worker

    raise typer.Exit(run_worker(WorkerConfig(limit=limit, pool=pool, warm=warm)))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def warm(ctx: typer.Context) -> None:
    """The warm process a worker's runs start from (`up` and `worker` start one): Prefect
    and the flows imported once, a fork per run. Options: --socket PATH (default
    TENANTFORM_WARM_SOCKET or DATA_DIR/warm/engine.sock), --check-seconds, --watch FILE."""
    from deployments.warm.server import main

    raise typer.Exit(main(list(ctx.args)))


# Talking to a gateway ----------------------------------------------------------------------
def _settings() -> Settings:
    from flows.settings import get_settings  # here: the settings model costs --help 0.2 s

    return get_settings()


def _gateway() -> httpx.Client:
    settings = _settings()
    key = settings.api_key.get_secret_value() if settings.api_key else None
    local = settings.data_dir / "api-key"  # as `up` takes it: relative to the current directory
    if not key and local.exists():
        key = local.read_text().strip()
    if not key:
        console.print("[red]set API_KEY (or run from the directory of `tenantform up`)[/red]")
        raise typer.Exit(2)
    return httpx.Client(base_url=settings.cli_gateway_url, headers={"X-API-Key": key}, timeout=30)


def _call(method: str, path: str, **kwargs: Any) -> Any:
    try:
        with _gateway() as gateway:
            answer = gateway.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        console.print(f"[red]no gateway at {_settings().cli_gateway_url}: {exc}[/red]")
        raise typer.Exit(2) from None
    if answer.is_error:
        detail = (
            answer.json().get("detail") if "json" in answer.headers.get("content-type", "") else answer.text
        )
        console.print(f"[red]{answer.status_code}: {detail}[/red]")
        raise typer.Exit(1)
    return answer.json()


def _show(
    data: Any, as_json: bool, columns: list[str] | None = None, rows: list[dict[str, Any]] | None = None
) -> None:
    if as_json or (columns is None and not isinstance(data, dict)):
        print(json.dumps(data, indent=2, default=str))
        return
    if columns is None:  # one answer: a field per line, never wrapped (a key is copied from it)
        for field, value in data.items():
            print(f"{field}: {_cell(value)}")
        return
    table = Table(*columns)
    for row in rows or []:
        table.add_row(*(str(row.get(c, "")) for c in columns))
    console.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return json.dumps(value, default=str) if isinstance(value, dict | list) else str(value)


@clients_app.command("list")
def clients_list(
    status: Annotated[str | None, typer.Option(help="Only clients in this status.")] = None,
    drift: Annotated[str | None, typer.Option(help="Only clients with this drift status.")] = None,
    target: Annotated[str | None, typer.Option(help="Only clients of this target.")] = None,
    limit: int = 100,
    as_json: JsonOpt = False,
) -> None:
    params = {
        k: v for k, v in {"status": status, "drift": drift, "target": target, "limit": limit}.items() if v
    }
    data = _call("GET", "/api/clients", params=params)
    rows = [{**c, "drift": c["drift"]["status"]} for c in data["clients"]]
    _show(data, as_json, ["client_uuid", "target", "name", "status", "drift"], rows)


@clients_app.command("show")
def clients_show(client_id: str, as_json: JsonOpt = False) -> None:
    _show(_call("GET", f"/api/clients/{client_id}/status"), as_json)


@clients_app.command("outputs")
def clients_outputs(client_id: str, as_json: JsonOpt = False) -> None:
    _show(_call("GET", f"/api/clients/{client_id}/outputs"), as_json)


@clients_app.command("delete")
def clients_delete(
    client_id: str,
    cascade: Annotated[bool, typer.Option(help="Also destroy sub-clients.")] = False,
    wait: Annotated[bool, typer.Option(help="Wait for the destroy to end.")] = False,
    as_json: JsonOpt = False,
) -> None:
    accepted = _call("DELETE", f"/api/clients/{client_id}", params={"cascade": str(cascade).lower()})
    _finish(accepted, wait, as_json)


@app.command()
def provision(
    prefix: Annotated[str, typer.Option(help="Instances are named {prefix}-{n}.")],
    count: Annotated[int, typer.Option(help="How many instances.")] = 1,
    cloud: Annotated[
        str, typer.Option(help=f"The target's cloud_provider: {', '.join(by_cloud_provider())}.")
    ] = "local",
    config: Annotated[str, typer.Option(help="provider_config as JSON.")] = "{}",
    wait: Annotated[bool, typer.Option(help="Wait for the run to end.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """The Airflow document's request."""
    if cloud not in (clouds := by_cloud_provider()):
        console.print(f"[red]--cloud {cloud!r} is not one of {', '.join(clouds)}[/red]")
        raise typer.Exit(2)
    try:
        provider_config = json.loads(config)
    except json.JSONDecodeError as exc:
        console.print(f"[red]--config is not JSON: {exc}[/red]")
        raise typer.Exit(2) from None
    body = {
        "cloud_provider": cloud,
        "provider_config": provider_config,
        "instance_name_prefix": prefix,
        "count": count,
    }
    _finish(_call("POST", "/provision", json=body), wait, as_json)


def _finish(accepted: dict[str, Any], wait: bool, as_json: bool) -> None:
    run_id = accepted["request_id"]
    if not wait:
        _show(accepted, as_json)
        return
    while (run := _call("GET", f"/api/runs/{run_id}"))["status"] not in ENDED:
        time.sleep(1)
    _show(run, as_json)
    raise typer.Exit(0 if run["status"] == "completed" else 1)


@runs_app.command("show")
def runs_show(run_id: str, as_json: JsonOpt = False) -> None:
    _show(_call("GET", f"/api/runs/{run_id}"), as_json)


@runs_app.command("logs")
def runs_logs(
    run_id: str,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the run ends.")] = False,
) -> None:
    printed = 0
    while True:
        run = _call("GET", f"/api/runs/{run_id}", params={"logs": "true"})
        lines = run.get("logs") or []
        for line in lines[printed:]:
            print(line, flush=True)
        printed = len(lines)
        if not follow or run["status"] in ENDED:
            raise typer.Exit(0 if run["status"] != "failed" else 1)
        time.sleep(2)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="What the key is for.")],
    scope: Annotated[str, typer.Option(help="read, write or admin.")] = "write",
    as_json: JsonOpt = False,
) -> None:
    """The key is printed once."""
    _show(_call("POST", "/api/keys", json={"name": name, "scope": scope}), as_json)


@keys_app.command("list")
def keys_list(as_json: JsonOpt = False) -> None:
    data = _call("GET", "/api/keys")
    _show(data, as_json, ["id", "name", "prefix", "scope", "created_at", "revoked_at"], data)


@keys_app.command("revoke")
def keys_revoke(key_id: str, as_json: JsonOpt = False) -> None:
    _show(_call("DELETE", f"/api/keys/{key_id}"), as_json)


@policy_app.command("test")
def policy_test(
    directories: Annotated[
        list[Path] | None,
        typer.Argument(help="Policy directories to test instead of the built-ins and POLICY_DIR."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the policies' own tests (every ``test_*`` rule, as ``opa test`` does); exit 1 when
    one fails or a policy does not load, naming its file and line."""
    from flows.policy import PolicyError, PolicySet

    dirs = list(directories) if directories else _settings().policy_dirs
    try:
        outcomes = PolicySet.load(dirs).run_tests()
    except PolicyError as exc:
        if as_json:
            print(json.dumps({"error": str(exc), "tests": []}, indent=2))
        console.print(f"[red]policies do not load:[/red] {exc}")
        raise typer.Exit(1) from None
    failed = [o for o in outcomes if not o.passed]
    if as_json:
        print(json.dumps({"error": None, "tests": [o.__dict__ for o in outcomes]}, indent=2))
    else:
        table = Table("test", "file", "result")
        for o in outcomes:
            verdict = "[green]PASS[/green]" if o.passed else f"[red]FAIL[/red] {o.error}".rstrip()
            table.add_row(f"data.{o.package}.{o.name}", o.file, verdict)
        console.print(table)
        console.print(f"{len(outcomes) - len(failed)} passed, {len(failed)} failed")
    raise typer.Exit(1 if failed else 0)


@rollouts_app.command("list")
def rollouts_list(
    target: Annotated[str | None, typer.Option(help="Only rollouts of this target.")] = None,
    status: Annotated[str | None, typer.Option(help="Only rollouts in this status.")] = None,
    as_json: JsonOpt = False,
) -> None:
    params = {k: v for k, v in {"target": target, "status": status}.items() if v}
    data = _call("GET", "/api/rollouts", params=params)
    _show(
        data,
        as_json,
        ["rollout_id", "target", "revision", "status", "current_wave", "message"],
        data["rollouts"],
    )


@rollouts_app.command("show")
def rollouts_show(rollout_id: str, as_json: JsonOpt = False) -> None:
    """Each wave and each client's step, run and reason."""
    data = _call("GET", f"/api/rollouts/{rollout_id}")
    if as_json:
        _show(data, as_json)
        return
    console.print(f"rollout {data['rollout_id']} of {data['target']}: {data['status']} ({data['message']})")
    rows = [{**c, "wave": w["index"] + 1} for w in data["waves"] for c in w["clients"]]
    _show(
        data, False, ["wave", "client_id", "step", "from_revision", "to_revision", "run_id", "reason"], rows
    )


@rollouts_app.command("start")
def rollouts_start(
    spec: Annotated[
        Path, typer.Argument(help="The rollout as JSON (POST /api/rollouts's body); - for stdin.")
    ],
    as_json: JsonOpt = False,
) -> None:
    body = json.loads(sys.stdin.read() if str(spec) == "-" else spec.read_text())
    _show(_call("POST", "/api/rollouts", json=body), as_json)


def _rollout_action(action: str) -> Any:
    def command(rollout_id: str, as_json: JsonOpt = False) -> None:
        _show(_call("POST", f"/api/rollouts/{rollout_id}/{action}"), as_json)

    command.__doc__ = {
        "pause": "Open upgrade runs finish; no new one starts.",
        "resume": "Carry a paused or halted rollout on.",
        "abort": "End it; clients not yet upgrading are skipped.",
        "rollback": "A new rollout moving each upgraded client back to its previous revision.",
    }[action]
    return command


for _action in ("pause", "resume", "abort", "rollback"):
    rollouts_app.command(_action)(_rollout_action(_action))


@app.command()
def doctor(as_json: JsonOpt = False) -> None:
    """Check Terraform, the data dir, the state backend, the policies, Prefect, the gateway and
    the clouds' credentials; say what is wrong and how to fix it."""
    from deployments.doctor import diagnose

    findings = diagnose()
    if as_json:
        print(json.dumps([f.__dict__ for f in findings], indent=2))
    else:
        table = Table("check", "status", "detail")
        for f in findings:
            colour = {"ok": "green", "warning": "yellow", "error": "red"}[f.status]
            table.add_row(f.check, f"[{colour}]{f.status}[/{colour}]", f.detail)
        console.print(table)
    raise typer.Exit(1 if any(f.status == "error" for f in findings) else 0)


def main(argv: list[str] | None = None) -> int:
    """Typer exits with the code: 2 for bad usage, a command's own otherwise."""
    try:
        app(args=argv)
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
