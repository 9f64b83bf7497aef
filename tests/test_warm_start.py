"""Warm starts (deployments/warm): flow runs forked from a pre-imported warm process behind
the process worker's ``command``, on the session's Prefect server with a work pool, a
worker and a warm process of this module's own. Real processes and signals throughout:
the run process, its launcher and the warm process are killed with SIGKILL."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import pytest

from deployments.processes import alive, descendants
from deployments.warm.launch import SOCKET_ENV
from deployments.warm.server import warm_env
from tests.conftest import WORKER_ENV
from tests.support import start_worker, stop_process, stop_worker, wait_until

POOL = "tenantform-warm-tests"
DEPLOYMENT = "provision/warm"
LAUNCH = "python -m deployments.warm.launch"
SECRET = "warm-secret-" + secrets.token_hex(12)
SHORT = {"LOCALCLOUD_CREATE_DELAY_SECONDS": "6", "LOCALCLOUD_DELAY_NAME_PREFIX": "short"}


@dataclass
class Warm:
    data_dir: Path
    socket: Path
    log: Path
    watched: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = warm_env(
            {**os.environ, "TENANTFORM_DATA_DIR": str(self.data_dir), SOCKET_ENV: str(self.socket)}
        )
        assert "PREFECT_API_URL" not in env, "runs must get Prefect's settings from the handed env"
        argv = [sys.executable, "-m", "deployments.warm.server", "--check-seconds", "0.5"]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [*argv, "--watch", str(self.watched)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        mark = self.log.stat().st_size
        wait_until(lambda: "warm: ready" in self.log.read_text()[mark:], 120, "the warm process")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def started_runs(self) -> int:
        return len(re.findall(r"run process \d+ started", self.log.read_text()))


@pytest.fixture(scope="module")
def warm(prefect_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warm]:
    from prefect.types.entrypoint import EntrypointType

    from deployments.apply import ensure_work_pool
    from flows.provision import provision

    root = tmp_path_factory.mktemp("warm")
    data_dir = root / "data"
    watched = root / "deployed-code.txt"
    watched.write_text("v1")
    server = Warm(data_dir, root / "w" / "engine.sock", root / "warm.log", watched)

    async def deploy() -> None:
        await ensure_work_pool(POOL)
        deployment = await provision.ato_deployment(
            name="warm",
            work_pool_name=POOL,
            job_variables={"command": LAUNCH},
            entrypoint_type=EntrypointType.MODULE_PATH,
        )
        await deployment.apply()  # type: ignore[misc]

    asyncio.run(deploy())
    server.start()
    env = {
        **os.environ,
        **WORKER_ENV,
        "TENANTFORM_DATA_DIR": str(data_dir),
        SOCKET_ENV: str(server.socket),
        "TENANTFORM_TEST_SECRET": SECRET,
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
    }
    worker = start_worker(env, root / "worker.log", pool=POOL)
    try:
        yield server
    finally:
        stop_worker(worker)
        server.stop()


@pytest.fixture
def running(warm: Warm) -> Warm:
    """The warm process up (a test before may have killed it)."""
    if warm.proc is None or warm.proc.poll() is not None:
        warm.proc = None
        warm.start()
    return warm


# Prefect -------------------------------------------------------------------------------
def submit(prefix: str, client_id: str | None = None, env: dict[str, str] | None = None) -> UUID:
    from prefect.client.orchestration import get_client

    from tests.support import flow_params

    params = flow_params(
        client_id or str(uuid.uuid4()),
        "local",
        {"cloud_provider": "local", "instance_name_prefix": prefix, "count": 1},
    )

    async def create() -> UUID:
        async with get_client() as client:
            deployment = await client.read_deployment_by_name(DEPLOYMENT)
            run = await client.create_flow_run_from_deployment(
                deployment.id,
                parameters={"params": params.model_dump(mode="json")},
                job_variables={"env": env} if env else None,
            )
        return run.id

    return asyncio.run(create())


def state_of(flow_run_id: UUID) -> str:
    from prefect.client.orchestration import get_client

    async def read() -> str:
        async with get_client() as client:
            run = await client.read_flow_run(flow_run_id)
        return run.state.type.value if run.state else "NONE"

    return asyncio.run(read())


def wait_state(flow_run_id: UUID, states: set[str], timeout: float = 180) -> str:
    wait_until(lambda: state_of(flow_run_id) in states, timeout, f"flow run {flow_run_id} to be {states}")
    return state_of(flow_run_id)


FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def cancel(flow_run_id: UUID) -> None:
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelling

    async def ask() -> None:
        async with get_client() as client:
            await client.set_flow_run_state(flow_run_id, Cancelling(message="cancelled by the test"))

    asyncio.run(ask())


# Processes ------------------------------------------------------------------------------
def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def environ(pid: int) -> bytes:
    """The environment ``pid`` was started (exec'd) with: not what it set or got since."""
    return Path(f"/proc/{pid}/environ").read_bytes()


def memory_holds(pid: int, needle: bytes) -> bool:
    """Whether ``needle`` is in the process's writable memory (heap, stacks, anonymous
    mappings): where a secret is once the process has held it, whether it came in its
    environment at exec, over a socket, or into ``os.environ`` after a fork."""
    chunk, overlap = 1 << 20, len(needle) - 1
    regions = []
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        addresses, perms = line.split()[:2]
        if perms.startswith("rw"):
            start, end = (int(a, 16) for a in addresses.split("-"))
            regions.append((start, end))
    assert regions, f"no writable memory read from process {pid}"
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for start, end in regions:
            tail = b""
            for offset in range(start, end, chunk):
                try:
                    mem.seek(offset)
                    data = tail + mem.read(min(chunk, end - offset))
                except OSError:
                    break
                if needle in data:
                    return True
                tail = data[-overlap:]
    return False


def proc_state(pid: int) -> str:
    """R, S, Z, ...; "" for a process that is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


@dataclass
class RunProcesses:
    launcher: int
    supervisor: int
    child: int
    terraform: int


def processes_of(warm: Warm, flow_run_id: UUID) -> RunProcesses | None:
    """The launcher (run by the worker), and below the warm process: the supervisor, the
    run process and the Terraform it runs (an apply), once Terraform is applying."""
    launchers = [
        pid
        for pid in map(int, [p for p in os.listdir("/proc") if p.isdigit()])
        if "deployments.warm.launch" in cmdline(pid) and str(flow_run_id).encode() in _safe_environ(pid)
    ]
    if len(launchers) != 1:
        return None
    for supervisor in _children(warm.pid):
        children = _children(supervisor)
        for child in children:
            if str(flow_run_id) not in _ran(warm, child):
                continue
            terraform = [
                p for p in descendants(child) if " apply" in cmdline(p) and "terraform" in cmdline(p)
            ]
            if terraform:
                return RunProcesses(launchers[0], supervisor, child, terraform[0])
    return None


def _children(parent: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                ppid = int(Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[1])
                if ppid == parent:
                    found.append(int(name))
    return found


def _safe_environ(pid: int) -> bytes:
    try:
        return environ(pid)
    except OSError:
        return b""


def _ran(warm: Warm, child: int) -> str:
    """The line the warm process logged for this run process (its argv: the flow run)."""
    match = re.search(rf"run process {child} started for flow run (\S+)", warm.log.read_text())
    return match.group(1) if match else ""


def find_processes(warm: Warm, flow_run_id: UUID, timeout: float = 150) -> RunProcesses:
    found: list[RunProcesses] = []

    def check() -> bool:
        procs = processes_of(warm, flow_run_id)
        if procs:
            found.append(procs)
        return procs is not None

    wait_until(check, timeout, "Terraform to be applying in a warm-started run")
    return found[-1]


# Tests ---------------------------------------------------------------------------------
def test_a_run_through_the_warm_process_completes_and_leaves_no_zombie(running: Warm) -> None:
    before = running.started_runs()
    flow_run_id = submit("warm")
    assert wait_state(flow_run_id, FINAL) == "COMPLETED"
    assert running.started_runs() == before + 1, "the run was forked by the warm process"
    wait_until(
        lambda: not [p for p in _children(running.pid) if proc_state(p) == "Z"],
        10,
        "the warm process to reap its children",
    )
    threads = os.listdir(f"/proc/{running.pid}/task")
    assert len(threads) == 1, "the warm process stays single-threaded"


def test_a_run_s_secrets_reach_its_run_and_never_the_warm_process_or_the_next_run(
    running: Warm,
) -> None:
    """The worker's environment (SECRET) and a run's own (its job variables) go to that
    run's process over the launcher's socket, after the fork: its /proc environ is the warm
    process's, so the secret is looked for where it would be, in the processes' memory. The
    run holds both and hands them to Terraform; the warm process, which forks every run,
    holds neither and logs neither, and the next run it forks never gets the first one's."""
    first_secret = "run-secret-" + secrets.token_hex(12)
    first = submit("slow-secret-a", env={"TENANTFORM_RUN_SECRET": first_secret})
    a = find_processes(running, first)
    second = submit("slow-secret-b")
    b = find_processes(running, second)
    try:
        for secret in (SECRET, first_secret):
            assert secret.encode() in environ(a.launcher), "the worker started the launcher with it"
            assert memory_holds(a.child, secret.encode()), "the run process received it"
            assert secret.encode() in environ(a.terraform), "and handed it to Terraform"
            assert not memory_holds(running.pid, secret.encode()), "the warm process held it"
            assert secret not in running.log.read_text()
        assert b"TENANTFORM_RUN_SECRET=" not in environ(b.terraform)
        assert not memory_holds(b.child, first_secret.encode()), "the next run got the first's secret"
        assert SECRET.encode() in environ(b.terraform), "the control: the next run has its own"
    finally:
        for procs in (a, b):
            with contextlib.suppress(ProcessLookupError):
                os.kill(procs.child, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(procs.terraform, signal.SIGKILL)  # its own session: the crash left it
    assert wait_state(first, FINAL, timeout=60) == "CRASHED"
    assert wait_state(second, FINAL, timeout=60) == "CRASHED"


def test_killing_the_run_process_crashes_the_run(running: Warm) -> None:
    flow_run_id = submit("slow-child")
    procs = find_processes(running, flow_run_id)
    os.kill(procs.child, signal.SIGKILL)
    assert wait_state(flow_run_id, FINAL, timeout=60) == "CRASHED"
    wait_until(lambda: not alive(procs.launcher), 10, "the launcher to exit")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(procs.terraform, signal.SIGKILL)  # its own session: the crash left it


def test_killing_the_launcher_kills_the_run_and_crashes_it(running: Warm) -> None:
    flow_run_id = submit("slow-launcher")
    procs = find_processes(running, flow_run_id)
    os.kill(procs.launcher, signal.SIGKILL)
    wait_until(lambda: not alive(procs.child), 10, "the run process to die with its launcher")
    assert wait_state(flow_run_id, FINAL, timeout=60) == "CRASHED"
    with contextlib.suppress(ProcessLookupError):
        os.killpg(procs.terraform, signal.SIGKILL)


def test_a_run_outlives_the_warm_process(running: Warm) -> None:
    flow_run_id = submit("short-outlive", env=SHORT)
    procs = find_processes(running, flow_run_id)
    assert running.proc is not None
    running.proc.kill()
    running.proc.wait()
    assert alive(procs.child)
    assert wait_state(flow_run_id, FINAL) == "COMPLETED"
    running.proc = None


def test_cancel_ends_cancelled_and_releases_the_state_lock(running: Warm) -> None:
    client_id = str(uuid.uuid4())
    flow_run_id = submit("slow-cancel", client_id=client_id)
    procs = find_processes(running, flow_run_id)
    time.sleep(2)  # Terraform is inside the slow create
    cancel(flow_run_id)
    assert wait_state(flow_run_id, FINAL, timeout=100) == "CANCELLED"
    wait_until(lambda: not alive(procs.terraform), 30, "Terraform to stop")
    lock = running.data_dir / "state" / client_id / ".terraform.tfstate.lock.info"
    assert not lock.exists(), "Terraform stopped on its SIGINT and released the state lock"
    again = submit("short-after-cancel", client_id=client_id, env=SHORT)
    assert wait_state(again, FINAL) == "COMPLETED"


def test_with_the_warm_process_stopped_runs_still_complete(running: Warm) -> None:
    running.stop()
    before = running.started_runs()
    flow_run_id = submit("fallback")
    assert wait_state(flow_run_id, FINAL) == "COMPLETED"
    assert running.started_runs() == before, "the launcher fell back to python -m prefect.engine"


def test_new_code_restarts_the_warm_process_in_place(running: Warm) -> None:
    pid = running.pid
    mark = running.log.stat().st_size
    running.watched.write_text("v2 with more bytes")
    wait_until(lambda: "warm: ready" in running.log.read_text()[mark:], 120, "the restarted warm process")
    assert "code changed" in running.log.read_text()[mark:]
    assert running.pid == pid and alive(pid), "it execs itself, keeping its pid and socket"
    before = running.started_runs()
    assert wait_state(submit("restarted"), FINAL) == "COMPLETED"
    assert running.started_runs() == before + 1
