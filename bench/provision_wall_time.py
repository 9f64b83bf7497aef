"""Wall time of a `local` provision (2 instances): Terraform init + apply by hand with
the same binary, the `provision` flow called in-process, and a request through the
gateway of a running stack (accept -> completed, the warm start). Each
``BENCH_PROVISION_N`` times (default 10, after one warm-up), printed side by side (p50)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from bench.common import stack, table

REQUEST = {"cloud_provider": "local", "provider_config": {}, "instance_name_prefix": "bench", "count": 2}


N = int(os.environ.get("BENCH_PROVISION_N", "10"))


def by_hand(root: Path) -> float:
    """The baseline: the same module, tfvars and CLI config, two commands, no Prefect."""
    from flows.settings import Settings
    from flows.terraform.backends import local_backend
    from flows.terraform.binary import find_binary
    from flows.terraform.workspace import Workspace

    settings = Settings(data_dir=root)
    ws = Workspace(settings.root, "by-hand")
    ws.prepare(
        "local",
        {"client_id": "x", "instance_name_prefix": "bench", "instance_count": 2},
        local_backend(settings, "by-hand"),
    )
    env, binary = ws.environment(), str(find_binary(None).path)
    started = time.perf_counter()
    subprocess.run(
        [binary, f"-chdir={ws.path}", "init", "-input=false"], env=env, check=True, capture_output=True
    )
    subprocess.run(
        [binary, f"-chdir={ws.path}", "apply", "-auto-approve", "-input=false"],
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        hand = [by_hand(root / f"hand{i}") for i in range(N + 1)][1:]
        with stack(root / "stack") as running:
            from flows.contract import FlowParameters
            from flows.provision import provision

            in_flow: list[float] = []
            for _ in range(N + 1):
                started = time.perf_counter()
                params = FlowParameters(
                    run_id=str(uuid.uuid4()), client_id=str(uuid.uuid4()), target="local", inputs=REQUEST
                )
                state = provision(params=params, return_state=True)
                in_flow.append(time.perf_counter() - started)
                assert state.is_completed(), state.message

            cfg = running.config
            gateway = httpx.Client(base_url=cfg.gateway_url, headers={"X-API-Key": cfg.api_key or ""})
            through_gateway: list[float] = []
            for _ in range(N + 1):
                started = time.perf_counter()
                request_id = gateway.post("/provision", json=REQUEST).json()["request_id"]
                while gateway.get(f"/status/{request_id}").json()["status"] == "in_progress":
                    time.sleep(0.1)
                through_gateway.append(time.perf_counter() - started)
                assert gateway.get(f"/status/{request_id}").json()["status"] == "completed"
    base = statistics.median(hand)
    rows = [
        (label, str(len(values)), f"{(p50 := statistics.median(values)):.2f}", f"{p50 / base:.2f}")
        for label, values in (
            ("terraform init + apply by hand (baseline)", hand),
            ("provision flow, in-process", in_flow[1:]),
            ("POST /provision -> completed (stack, warm start)", through_gateway[1:]),
        )
    ]
    print(table("one local provision, 2 instances (p50)", rows, ("path", "n", "seconds", "x baseline")))
    print(json.dumps({"by_hand": hand, "flow": in_flow[1:], "gateway": through_gateway[1:]}))


if __name__ == "__main__":
    main()
