"""Wall time of one `local` provision (2 instances): Terraform init + apply by hand with
the same binary, the `provision` flow called in-process, and a request through the
gateway of a running stack (accept -> completed). Prints the three side by side."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from bench.common import stack, table

REQUEST = {"cloud_provider": "local", "provider_config": {}, "instance_name_prefix": "bench", "count": 2}


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
        hand = by_hand(root / "hand")
        with stack(root / "stack") as running:
            from flows.contract import FlowParameters
            from flows.provision import provision

            started = time.perf_counter()
            params = FlowParameters(
                run_id=str(uuid.uuid4()), client_id=str(uuid.uuid4()), target="local", inputs=REQUEST
            )
            state = provision(params=params, return_state=True)
            in_flow = time.perf_counter() - started
            assert state.is_completed(), state.message

            cfg = running.config
            gateway = httpx.Client(base_url=cfg.gateway_url, headers={"X-API-Key": cfg.api_key or ""})
            started = time.perf_counter()
            request_id = gateway.post("/provision", json=REQUEST).json()["request_id"]
            while gateway.get(f"/status/{request_id}").json()["status"] == "in_progress":
                time.sleep(0.1)
            through_gateway = time.perf_counter() - started
            assert gateway.get(f"/status/{request_id}").json()["status"] == "completed"
    rows = [
        ("terraform init + apply by hand (baseline)", f"{hand:.2f}", "1.00"),
        ("provision flow, in-process", f"{in_flow:.2f}", f"{in_flow / hand:.2f}"),
        (
            "POST /provision -> completed (tuned stack)",
            f"{through_gateway:.2f}",
            f"{through_gateway / hand:.2f}",
        ),
    ]
    print(table("one local provision, 2 instances", rows, ("path", "seconds", "x baseline")))
    print(json.dumps({"by_hand": hand, "flow": in_flow, "gateway": through_gateway}))


if __name__ == "__main__":
    main()
