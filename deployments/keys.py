"""``tenantform keys``: the gateway's key routes over HTTP, like any client."""

from __future__ import annotations

import argparse
import json
import os
import sys

import httpx


def run_keys(args: argparse.Namespace) -> int:
    url = os.environ.get("TENANTFORM_URL", "http://127.0.0.1:8000")
    admin = os.environ.get("API_KEY")
    if not admin:
        print("tenantform keys: set API_KEY to an admin key (and TENANTFORM_URL)", file=sys.stderr)
        return 2
    with httpx.Client(base_url=url, headers={"X-API-Key": admin}, timeout=30) as client:
        if args.keys_command == "create":
            answer = client.post("/api/keys", json={"name": args.name, "scope": args.scope})
        elif args.keys_command == "revoke":
            answer = client.delete(f"/api/keys/{args.key_id}")
        else:
            answer = client.get("/api/keys")
    if answer.is_error:
        print(f"tenantform keys: {answer.status_code} {answer.text}", file=sys.stderr)
        return 1
    print(json.dumps(answer.json(), indent=2))
    return 0
