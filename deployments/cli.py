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

    sub.add_parser("deploy", help="apply prefect.yaml's deployments to PREFECT_API_URL")

    args = parser.parse_args(argv)
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
    from deployments.apply import apply_deployments

    for name, deployment_id in asyncio.run(apply_deployments()).items():
        print(f"{name} {deployment_id}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
