"""The ``tenantform`` command."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from deployments.stack import StackConfig, run_up


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tenantform", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start Prefect, a worker and the gateway on this machine")
    up.add_argument("--host", default="127.0.0.1", help="gateway address (default 127.0.0.1)")
    up.add_argument("--port", type=int, default=8000, help="gateway port (default 8000)")
    up.add_argument("--prefect-port", type=int, default=4200, help="Prefect server port (default 4200)")
    up.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("TENANTFORM_DATA_DIR", ".tenantform")),
        help="TENANTFORM_DATA_DIR (default .tenantform/ in the current directory)",
    )
    up.add_argument("--worker-limit", type=int, default=4, help="flow runs one worker runs at once")

    sub.add_parser(
        "deploy",
        help="set up PREFECT_API_URL as `up` does: work pool, deployments, the missed-heartbeat"
        " automation, the fleet concurrency limit",
    )
    worker = sub.add_parser("worker", help="a process worker with the project's settings, after checks")
    worker.add_argument("--limit", type=int, default=2, help="flow runs this worker runs at once (default 2)")
    worker.add_argument("--pool", default=None, help="work pool (default: prefect.yaml's)")

    keys = sub.add_parser("keys", help="API keys on a running gateway (TENANTFORM_URL, admin API_KEY)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="make a key; it is printed once")
    create.add_argument("--name", required=True)
    create.add_argument("--scope", choices=["read", "write", "admin"], default="write")
    keys_sub.add_parser("list", help="the keys (never their secrets)")
    revoke = keys_sub.add_parser("revoke", help="revoke a key by id; effective at once")
    revoke.add_argument("key_id")

    args = parser.parse_args(argv)
    if args.command == "keys":
        from deployments.keys import run_keys

        return run_keys(args)
    if args.command == "up":
        return run_up(
            StackConfig(
                data_dir=args.data_dir.resolve(),
                host=args.host,
                port=args.port,
                prefect_port=args.prefect_port,
                prefect_api_url=os.environ.get("PREFECT_API_URL") or None,
                api_key=os.environ.get("API_KEY") or None,
                worker_limit=args.worker_limit,
            )
        )
    if args.command == "worker":
        from deployments.worker import WorkerConfig, run_worker

        return run_worker(WorkerConfig(limit=args.limit, pool=args.pool))
    from deployments.apply import set_up_prefect

    for name, what in asyncio.run(set_up_prefect()).items():
        print(f"{name} {what}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
