"""Bounds on what a request may send, and on what an error sends back of it."""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

EXCERPT = 120
"""Characters of a rejected value a 422 quotes: enough to find it, never the whole body."""


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` as the body streams in: FastAPI passes an HTTPException
    through its body parsing (any other error there becomes a 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, _too_large(limit))


def _too_large(limit: int) -> str:
    return f"request body over {limit} bytes (MAX_BODY_BYTES); send less"


class BodySizeLimit:
    """413 for a body over ``limit`` bytes, by its Content-Length or as it streams in
    (chunked), before any route reads it. Plain ASGI, like ``api.metrics.RequestCounter``."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        seen = 0
        started = False

        async def counting() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting, sending)
        except BodyTooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"detail": _too_large(self.limit)}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def excerpt(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validation errors with each ``input`` cut to a short excerpt (a 422 used to echo a
    whole body back, however large)."""
    return [{**e, "input": _short(e["input"])} if "input" in e else e for e in errors]


def _short(value: Any) -> Any:
    if isinstance(value, str | bytes):
        text = value if isinstance(value, str) else value.decode(errors="replace")
        return text if len(text) <= EXCERPT else text[:EXCERPT] + f"... ({len(text)} characters)"
    if isinstance(value, dict | list):
        text = json.dumps(value, default=str)
        return value if len(text) <= EXCERPT else text[:EXCERPT] + f"... ({len(text)} characters)"
    return value
