"""The few Prefect API calls on the path from a request to Terraform, with quick retries.

A Prefect server on SQLite answers a request 503 "database is locked" when another write
commits between the request's read and its write (its transactions start deferred), and
Prefect's client then waits 2 s, then 4 s, before trying again. Measured on the embedded
default, that was most runs' slot request. These calls try again after 50 ms, 100 ms, ...
instead, then leave it to Prefect's own retries. Everything else about the request (URL,
auth, TLS, headers) is Prefect's client's own."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from prefect.client.orchestration import PrefectClient, SyncPrefectClient

PAUSES = (0.05, 0.1, 0.2, 0.4, 0.8)


def send(client: SyncPrefectClient, method: str, path: str, body: dict[str, Any]) -> httpx.Response:
    http = client._client
    request = http.build_request(method, path, json=body)
    for pause in PAUSES:
        response = httpx.Client.send(http, request)  # once: Prefect's send would wait 2 s
        if response.status_code != httpx.codes.SERVICE_UNAVAILABLE:
            return response
        response.close()
        time.sleep(pause)
    return http.send(request)


async def asend(client: PrefectClient, method: str, path: str, body: dict[str, Any]) -> httpx.Response:
    http = client._client
    request = http.build_request(method, path, json=body)
    for pause in PAUSES:
        response = await httpx.AsyncClient.send(http, request)
        if response.status_code != httpx.codes.SERVICE_UNAVAILABLE:
            return response
        await response.aclose()
        await asyncio.sleep(pause)
    return await http.send(request)
