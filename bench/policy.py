"""What the policy check adds to a plan run: ``terraform show -json`` of the saved plan plus
the built-in policies loaded and evaluated (as a run does it: files read afresh), on plans
of 1 and of 50 localcloud resources, next to ``terraform plan -out`` of the same stack in
the same run. Target (issue 24): the check adds at most 5 % to a plan run.

    uv run python -m bench.policy [--plans 5] [--evals 200]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import pct, table
from flows.policy import BUILTIN_DIR, PolicySet, plan_document
from flows.terraform.binary import find_binary
from flows.terraform.runner import Terraform
from flows.terraform.workspace import Workspace

MODULE = """
terraform {
  required_providers {
    localcloud = { source = "tenantform/localcloud", version = "0.1.0" }
  }
}
variable "n" { type = number }
variable "client_id" { type = string }
resource "localcloud_instance" "this" {
  count = var.n
  name  = "bench-${count.index}"
  size  = "small"
  tags  = { client = var.client_id }
}
"""


def measure(root: Path, resources: int, plans: int, evals: int) -> tuple[str, ...]:
    client = f"bench-policy-{uuid.uuid4().hex[:8]}"
    workspace = Workspace(root, client)
    workspace.path.mkdir(parents=True)
    (workspace.path / "main.tf").write_text(MODULE)
    (workspace.path / "terraform.tfvars.json").write_text(json.dumps({"n": resources, "client_id": client}))
    terraform = Terraform(find_binary(None), workspace, workspace.environment())
    terraform.init()
    plan_times, show_times = [], []
    plan_file = workspace.plan_path("bench")
    for _ in range(plans):
        started = time.perf_counter()
        terraform.plan(out=plan_file)
        plan_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        plan = terraform.show_json(plan_file)
        show_times.append(time.perf_counter() - started)
    assert len(plan["resource_changes"]) == resources
    eval_times = []
    for _ in range(evals):
        started = time.perf_counter()
        document = plan_document(
            plan, client_id=client, target="local", inputs={}, labels={}, operation="provision"
        )
        results = PolicySet.load([BUILTIN_DIR]).evaluate(document)
        eval_times.append(time.perf_counter() - started)
    denials = sorted(r.policy for r in results if r.outcome.value == "deny")  # 50 > the cap of 20
    plan_p50, show_p50, eval_p50 = pct(plan_times, 50), pct(show_times, 50), pct(eval_times, 50)
    return (
        str(resources),
        f"{plan_p50:.2f} / {pct(plan_times, 99):.2f}",
        f"{show_p50:.2f} / {pct(show_times, 99):.2f}",
        f"{eval_p50 * 1000:.1f} / {pct(eval_times, 99) * 1000:.1f}",
        f"{100 * eval_p50 / plan_p50:.1f} %",
        f"{100 * (show_p50 + eval_p50) / plan_p50:.1f} %",
        ", ".join(denials) or "-",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--plans", type=int, default=5)
    parser.add_argument("--evals", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-policy-") as tmp:
        rows = [measure(Path(tmp), n, args.plans, args.evals) for n in (1, 50)]
    print(
        table(
            f"policy check vs terraform plan ({args.plans} plans, {args.evals} evaluations each; "
            f"{len(PolicySet.load([BUILTIN_DIR]).policies)} built-in policies)",
            rows,
            (
                "resources",
                "terraform plan -out s p50/p99",
                "show -json s p50/p99",
                "policies ms p50/p99",
                "policies / plan",
                "show + policies / plan",
                "denied by",
            ),
        )
    )


if __name__ == "__main__":
    main()
