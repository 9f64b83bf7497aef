"""``X-API-Key`` on every route but /health; HTTP Basic also on the Airflow-style routes.

A key is the bootstrap ``API_KEY`` (admin) or one made through ``/api/keys`` (stored as a
digest, with a scope). Reading needs ``read``, changing anything ``write``, managing keys
``admin``; each key has its own rate limit. Comparisons with configured secrets are
constant-time."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader, HTTPBasic, HTTPBasicCredentials

from api.keys import Caller, KeyService, RateLimiter, caller_name
from api.registry.models import Scope
from api.settings import GatewaySettings, get_gateway_settings

_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key.")
_basic = HTTPBasic(auto_error=False, description="API_USERNAME / API_PASSWORD (Airflow-style routes).")

Settings = Annotated[GatewaySettings, Depends(get_gateway_settings)]
KeyHeader = Annotated[str | None, Depends(_api_key)]
BasicCredentials = Annotated[HTTPBasicCredentials | None, Depends(_basic)]


def _same(given: str | None, expected: str | None) -> bool:
    if not given or not expected:
        return False
    return secrets.compare_digest(given.encode(), expected.encode())


def _unauthorized(detail: str, basic: bool) -> HTTPException:
    headers = {"WWW-Authenticate": 'Basic realm="tenantform"'} if basic else {"WWW-Authenticate": "APIKey"}
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers=headers)


def _by_key(request: Request, settings: GatewaySettings, key: str) -> Caller | None:
    bootstrap = settings.api_key.get_secret_value() if settings.api_key else None
    if _same(key, bootstrap):
        return Caller(name="bootstrap", scope=Scope.admin)
    keys: KeyService = request.app.state.keys
    return keys.find(key)


def _needed(request: Request) -> Scope:
    return Scope.read if request.method in ("GET", "HEAD", "OPTIONS") else Scope.write


def _admit(request: Request, caller: Caller, needed: Scope) -> None:
    """Scope, then the caller's rate limit; the caller is remembered for the runs it starts."""
    if not caller.scope.allows(needed):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail=f"this key's scope is {caller.scope}; {needed} needed"
        )
    limiter: RateLimiter = request.app.state.rate_limiter
    wait = limiter.wait_for(caller.name)
    if wait:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"rate limit of this key reached; retry in {wait}s",
            headers={"Retry-After": str(wait)},
        )
    caller_name.set(caller.name)


async def require_api_key(request: Request, settings: Settings, key: KeyHeader) -> None:
    caller = _by_key(request, settings, key) if key else None
    if caller is None:
        raise _unauthorized("missing X-API-Key header" if not key else "invalid X-API-Key", basic=False)
    _admit(request, caller, _needed(request))


async def require_admin(request: Request, settings: Settings, key: KeyHeader) -> None:
    caller = _by_key(request, settings, key) if key else None
    if caller is None:
        raise _unauthorized("missing X-API-Key header" if not key else "invalid X-API-Key", basic=False)
    _admit(request, caller, Scope.admin)


async def require_key_or_basic(
    request: Request, settings: Settings, key: KeyHeader, basic: BasicCredentials
) -> None:
    if key and (caller := _by_key(request, settings, key)) is not None:
        _admit(request, caller, _needed(request))
        return
    if basic is not None:
        password = settings.api_password.get_secret_value() if settings.api_password else None
        user_ok = _same(basic.username, settings.api_username)
        if user_ok & _same(basic.password, password):
            _admit(request, Caller(name=f"basic:{basic.username}", scope=Scope.write), _needed(request))
            return
        raise _unauthorized("invalid username or password", basic=True)
    raise _unauthorized(
        "invalid X-API-Key" if key else "send X-API-Key or HTTP Basic credentials", basic=True
    )


def still_admitted(request: Request) -> Callable[[], bool]:
    """For an answer that outlives its request (an event stream): whether the key that
    opened it would still be let in. A blocking registry read at most every
    ``KEY_CACHE_SECONDS`` per key; a key revoked on this gateway fails at once."""
    settings = get_gateway_settings()
    key = request.headers.get("X-API-Key") or ""

    def admitted() -> bool:
        return bool(key) and _by_key(request, settings, key) is not None

    return admitted


async def require_policy_override(request: Request, settings: Settings, key: KeyHeader) -> None:
    caller = _by_key(request, settings, key) if key else None
    if caller is None:
        raise _unauthorized("missing X-API-Key header" if not key else "invalid X-API-Key", basic=False)
    _admit(request, caller, Scope.policy_override)


ApiKey = Depends(require_api_key)
PolicyOverrideKey = Depends(require_policy_override)
AdminKey = Depends(require_admin)
KeyOrBasic = Depends(require_key_or_basic)
