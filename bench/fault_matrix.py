"""The fault matrix: provision, change and destroy requests across `local` clients through
a gateway, while a harness SIGKILLs, at random moments, the worker, a flow-run process, the
gateway and the Prefect server (one at a time, then two together) and starts them again.
Afterwards, per fault, what the promises say must hold:

accepted requests, ended with a reason (must be all), localcloud objects left over after
every client was destroyed (0: no duplicate or orphan), Terraform state locks left (0),
client concurrency slots still held (0), registry rows that disagree with Prefect (0),
requests that needed a person (0: a failed one was retried by the harness, as a script
would, and nothing needed SQL or an unlock).

Loopback only, bounded: BENCH_FAULT_CLIENTS (20) clients, each provisioned, changed twice
and destroyed (with retries of failed runs); the killer strikes for BENCH_FAULT_SECONDS
(600), then the work has BENCH_FAULT_SETTLE_SECONDS (300) more to finish with nothing
killed: a promise that holds only with no fault at all would not hold here. The gateway
hands a run a killed worker took but never started back to the pool after 30 s
(PENDING_RUN_SECONDS, 300 by default) so that the bound stays short.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench.common import free_port, table
from deployments.processes import alive, descendants, with_project_python
from deployments.stack import TUNED_PREFECT_ENV

CLIENTS = int(os.environ.get("BENCH_FAULT_CLIENTS", "20"))
BOUND = float(os.environ.get("BENCH_FAULT_SECONDS", "600"))
SETTLE = float(os.environ.get("BENCH_FAULT_SETTLE_SECONDS", "300"))
KEY = "fault-matrix-key"
ENDED = ("completed", "failed", "cancelled")
BIN = Path(sys.executable).parent


class Harness:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.prefect_port, self.gateway_port = free_port(), free_port()
        self.api = f"http://127.0.0.1:{self.prefect_port}/api"
        self.env = with_project_python(
            {
                **os.environ,
                **TUNED_PREFECT_ENV,
                "PREFECT_API_URL": self.api,
                "PREFECT_HOME": str(root / "prefect"),
                "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{root}/prefect/prefect.db",
                "PREFECT_UI_ENABLED": "false",
                "TENANTFORM_DATA_DIR": str(root / "data"),
                "DATABASE_URL": f"sqlite:///{root / 'registry.db'}",
                "API_KEY": KEY,
                "RATE_LIMIT_PER_SECOND": "0",
                "LOCALCLOUD_CREATE_DELAY_SECONDS": "2",
                "PENDING_RUN_SECONDS": "30",
            }
        )
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        (root / "prefect").mkdir(parents=True)

    def start(self, name: str) -> None:
        argv = {
            "prefect": [str(BIN / "prefect"), "server", "start", "--port", str(self.prefect_port)],
            "worker": [str(BIN / "tenantform"), "worker", "--limit", "2"],
            "gateway": [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(self.gateway_port)],
        }[name]
        log = open(self.root / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen(
            argv, env=self.env, stdout=log, stderr=log, start_new_session=True
        )
        probe = {
            "prefect": f"{self.api}/health",
            "gateway": f"http://127.0.0.1:{self.gateway_port}/openapi.json",
        }
        if name in probe:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(probe[name], timeout=2).status_code < 500:
                        return
                time.sleep(0.5)
            raise TimeoutError(f"{name} did not start")

    def kill(self, name: str) -> None:
        """SIGKILL the process and everything under it (a worker takes its runs with it)."""
        if name == "flow-run":
            for pid in descendants(self.procs["worker"].pid):
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes() if Path(f"/proc/{pid}").exists() else b""
                # The run's process: the launcher (its run dies with it) or the stock engine.
                if b"prefect.engine" in cmdline or b"deployments.warm.launch" in cmdline:
                    for victim in [pid, *descendants(pid)]:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(victim, signal.SIGKILL)
                    return
            return
        proc = self.procs[name]
        for pid in [proc.pid, *descendants(proc.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=30)
        if name == "prefect":
            time.sleep(1)
        self.start(name)

    def stop(self) -> None:
        for proc in self.procs.values():
            family = [proc.pid, *descendants(proc.pid)]
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)
            deadline = time.monotonic() + 20
            while any(alive(p) for p in family) and time.monotonic() < deadline:
                time.sleep(0.2)
            for pid in family:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def gateway(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.gateway_port}", headers={"X-API-Key": KEY}, timeout=30
        )


def call(h: Harness, method: str, path: str, **kwargs: Any) -> Any:
    """A client's retrying call: the gateway may be down for a moment."""
    deadline = time.monotonic() + 120
    while True:
        try:
            with h.gateway() as gateway:
                answer = gateway.request(method, path, **kwargs)
            if answer.status_code < 500:
                return answer
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{method} {path}")
        time.sleep(1)


def wait_end(h: Harness, run_id: str, deadline: float) -> dict[str, Any]:
    while time.monotonic() < deadline:
        run: dict[str, Any] = call(h, "GET", f"/api/runs/{run_id}").json()
        if run["status"] in ENDED:
            return run
        time.sleep(1)
    return call(h, "GET", f"/api/runs/{run_id}").json()  # type: ignore[no-any-return]


def drive(h: Harness, fault: tuple[str, ...], rng: random.Random) -> dict[str, Any]:
    """Requests in waves with a killer thread; a failed run is retried as a script would."""
    stop = threading.Event()

    strikes_until = time.monotonic() + BOUND

    def killer() -> None:
        while not stop.wait(rng.uniform(8, 20)) and time.monotonic() < strikes_until:
            for name in fault:
                h.kill(name)

    thread = threading.Thread(target=killer, daemon=True)
    if fault:
        thread.start()
    deadline = strikes_until + SETTLE
    accepted: list[str] = []
    retries = 0

    def step(make: Callable[[str], httpx.Response], clients: list[str]) -> list[dict[str, Any]]:
        nonlocal retries
        runs = [make(c).json() for c in clients]
        accepted.extend(r["request_id"] for r in runs)
        ended = [wait_end(h, r["request_id"], deadline) for r in runs]
        for i, run in enumerate(ended):
            if run["status"] != "completed" and time.monotonic() < deadline:
                retried = call(h, "POST", f"/api/clients/{run['client_uuid']}/retry").json()
                if "request_id" in retried:
                    retries += 1
                    accepted.append(retried["request_id"])
                    ended[i] = wait_end(h, retried["request_id"], deadline)
        return ended

    body = {"cloud_provider": "local", "provider_config": {}, "count": 1}
    made = step(
        lambda i: call(h, "POST", "/provision", json={**body, "instance_name_prefix": f"f{i}"}),
        [str(i) for i in range(CLIENTS)],
    )
    clients = [r["client_uuid"] for r in made]
    for count in (2, 1):
        step(lambda c, n=count: call(h, "PATCH", f"/api/clients/{c}", json={"count": n}), clients)  # type: ignore[misc]
    step(lambda c: call(h, "DELETE", f"/api/clients/{c}"), clients)
    stop.set()
    if thread.is_alive():
        thread.join(timeout=60)
    return {"accepted": accepted, "clients": clients, "retries": retries}


def held_lock(state: Path) -> bool:
    """Terraform's local backend locks the state file with fcntl; its `.lock.info` file
    outlives a killed Terraform, the lock does not."""
    import fcntl

    with state.open("rb+") as f:
        try:
            fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.lockf(f, fcntl.LOCK_UN)
    return False


def audit(h: Harness, outcome: dict[str, Any]) -> tuple[str, ...]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
    from prefect.settings import PREFECT_API_URL, temporary_settings

    runs = [call(h, "GET", f"/api/runs/{r}").json() for r in outcome["accepted"]]
    ended = [r for r in runs if r["status"] in ENDED and r["message"]]
    data = h.root / "data"
    leftovers = len(list((data / "localcloud" / "instances").glob("*.json")))
    locks = sum(held_lock(state) for state in (data / "state").glob("*/terraform.tfstate"))
    disagree = held = 0
    with temporary_settings(updates={PREFECT_API_URL: h.api}), get_client(sync_client=True) as prefect:
        for run in runs:
            flows = prefect.read_flow_runs(
                flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[f"run:{run['request_id']}"]))
            )
            if len(flows) > 1:
                disagree += 1
            elif flows and flows[0].state is not None:
                final, status = flows[0].state, run["status"]
                ok = (final.is_completed() and status == "completed") or (
                    (final.is_failed() or final.is_crashed() or final.is_cancelled())
                    and status in ("failed", "cancelled")
                )
                disagree += 0 if ok else 1
        for client in outcome["clients"]:
            with contextlib.suppress(Exception):
                held += prefect.read_global_concurrency_limit_by_name(
                    f"tenantform-client-{client}"
                ).active_slots
    person = len(runs) - len(ended)
    return (
        str(len(runs)),
        f"{len(ended)}/{len(runs)}",
        str(outcome["retries"]),
        str(leftovers),
        str(locks),
        str(held),
        str(disagree),
        str(person),
    )


def main() -> None:
    faults: list[tuple[str, ...]] = [
        (),
        ("worker",),
        ("flow-run",),
        ("gateway",),
        ("prefect",),
        ("worker", "gateway"),
        ("prefect", "gateway"),
    ]
    only = os.environ.get("BENCH_FAULTS")
    if only:
        faults = [tuple(f.split("+")) if f != "none" else () for f in only.split(",")]
    rows = []
    rng = random.Random(7)
    for fault in faults:
        with tempfile.TemporaryDirectory() as tmp:
            h = Harness(Path(tmp))
            try:
                h.start("prefect")
                from prefect.settings import PREFECT_API_URL, temporary_settings

                from deployments.apply import set_up_prefect

                with temporary_settings(updates={PREFECT_API_URL: h.api}):
                    asyncio.run(set_up_prefect())
                h.start("worker")
                h.start("gateway")
                outcome = drive(h, fault, rng)
                rows.append(("+".join(fault) or "none", *audit(h, outcome)))
            finally:
                h.stop()
        print(rows[-1], file=sys.stderr, flush=True)
    header = (
        "fault",
        "accepted",
        "ended w/ reason",
        "retried",
        "objects left",
        "state locks",
        "slots held",
        "registry≠Prefect",
        "needed a person",
    )
    print(table(f"Fault matrix: {CLIENTS} clients, provision + 2 changes + destroy each", rows, header))


if __name__ == "__main__":
    main()
