"""The error answers the routes really give, declared once so ``/docs`` and the OpenAPI
document show them (and a fuzzer can hold the routes to them)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorDetail(BaseModel):
    detail: str


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorDetail, "description": description}


Responses = dict[int | str, dict[str, Any]]

UNAUTHORIZED: Responses = {401: _error("Missing or invalid credentials.")}
NOT_FOUND: Responses = {404: _error("No such client or run.")}
CONFLICT: Responses = {409: _error("Not allowed in the client's or run's current state.")}
BAD_BODY: Responses = {400: _error("The body could not be parsed (not JSON).")}
FORBIDDEN: Responses = {403: _error("The key's scope does not allow this.")}
RATE_LIMITED: Responses = {
    429: _error("The key's rate limit is reached; the Retry-After header says when to retry.")
}
GUARDED: Responses = {**UNAUTHORIZED, **FORBIDDEN, **RATE_LIMITED}
UNAVAILABLE: Responses = {503: _error("Prefect did not answer; nothing was changed.")}


def as_json(responses: Responses) -> Responses:
    """The same answers for a route whose success is not JSON (a stream): FastAPI would
    declare them in the route's media type, but errors are always JSON."""
    ref = {"$ref": f"#/components/schemas/{ErrorDetail.__name__}"}
    return {
        code: {"description": answer["description"], "content": {"application/json": {"schema": ref}}}
        for code, answer in responses.items()
    }


AIRFLOW_ROUTES = ("/provision", "/status/{request_id}")
"""The Airflow document answers invalid request data with 400 (the rest of the API: 422)."""
