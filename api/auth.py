"""``X-API-Key`` on every route but /health; HTTP Basic also on the Airflow-style routes.
Comparisons are constant-time."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import APIKeyHeader, HTTPBasic, HTTPBasicCredentials

from api.settings import GatewaySettings, get_gateway_settings

_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="The gateway's API key.")
_basic = HTTPBasic(auto_error=False, description="API_USERNAME / API_PASSWORD (Airflow-style routes).")

Settings = Annotated[GatewaySettings, Depends(get_gateway_settings)]


def _same(given: str | None, expected: str | None) -> bool:
    if not given or not expected:
        return False
    return secrets.compare_digest(given.encode(), expected.encode())


def _key_ok(settings: GatewaySettings, key: str | None) -> bool:
    expected = settings.api_key.get_secret_value() if settings.api_key else None
    return _same(key, expected)


def _unauthorized(detail: str, basic: bool) -> HTTPException:
    headers = {"WWW-Authenticate": 'Basic realm="tenantform"'} if basic else {"WWW-Authenticate": "APIKey"}
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers=headers)


def require_api_key(settings: Settings, key: Annotated[str | None, Depends(_api_key)]) -> None:
    if not _key_ok(settings, key):
        raise _unauthorized("missing X-API-Key header" if not key else "invalid X-API-Key", basic=False)


def require_key_or_basic(
    settings: Settings,
    key: Annotated[str | None, Depends(_api_key)],
    basic: Annotated[HTTPBasicCredentials | None, Depends(_basic)],
) -> None:
    if _key_ok(settings, key):
        return
    if basic is not None:
        password = settings.api_password.get_secret_value() if settings.api_password else None
        user_ok = _same(basic.username, settings.api_username)
        if user_ok & _same(basic.password, password):
            return
        raise _unauthorized("invalid username or password", basic=True)
    raise _unauthorized(
        "invalid X-API-Key" if key else "send X-API-Key or HTTP Basic credentials", basic=True
    )


ApiKey = Depends(require_api_key)
KeyOrBasic = Depends(require_key_or_basic)
