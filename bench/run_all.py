"""Runs every bench script in turn (``make bench``)."""

from __future__ import annotations

import subprocess
import sys

for script in (
    "bench.provision_wall_time",
    "bench.accept_load",
    "bench.dispatch_latency",
    "bench.warm_start",
    "bench.sweep",
    "bench.list_clients",
    "bench.scale_out",
    "bench.fault_matrix",
    "bench.policy",
    "bench.fleet",
):
    print(f"\n== {script}", flush=True)
    subprocess.run([sys.executable, "-m", script], check=True)
