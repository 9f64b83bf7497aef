"""The rollout flow's side of the gateway: the registry is the gateway's, so the flow asks
it over HTTP (as a scheduled sweep asks it for the fleet). A gateway that restarts
mid-wave is waited for, within a bound, rather than failing the rollout."""

from __future__ import annotations

import time
from typing import Any

import httpx

from flows.rollouts.contract import PlanOutcome, WaveEnd, WaveStart, dump
from flows.settings import Settings

RETRY_FOR_SECONDS = 300.0
"""How long a gateway that does not answer (restarting, overloaded) is retried."""
_TRANSIENT = {408, 429, 502, 503, 504}


class GatewayUnavailable(RuntimeError):
    pass


class RolloutGateway:
    def __init__(self, settings: Settings, rollout_id: str) -> None:
        if not settings.gateway_url:
            raise GatewayUnavailable(
                "TENANTFORM_GATEWAY_URL is not set on the worker: a rollout records each client "
                "through the gateway"
            )
        key = settings.api_key.get_secret_value() if settings.api_key else ""
        self.http = httpx.Client(base_url=settings.gateway_url, headers={"X-API-Key": key}, timeout=30)
        self.base = f"/api/rollouts/{rollout_id}"

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        deadline = time.monotonic() + RETRY_FOR_SECONDS
        while True:
            try:
                answer = self.http.request(method, path, json=body)
                if answer.status_code not in _TRANSIENT:
                    answer.raise_for_status()
                    return answer.json()
                problem = f"HTTP {answer.status_code}"
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if time.monotonic() > deadline:
                raise GatewayUnavailable(
                    f"the gateway did not answer {method} {path} for {RETRY_FOR_SECONDS:.0f}s ({problem})"
                )
            time.sleep(2)

    def view(self) -> dict[str, Any]:
        return dict(self._call("GET", self.base))

    def start_wave(self, wave: int) -> WaveStart:
        return WaveStart.model_validate(self._call("POST", f"{self.base}/waves/{wave}/start"))

    def planned(self, client_id: str, outcome: PlanOutcome) -> None:
        self._call("PUT", f"{self.base}/clients/{client_id}/plan", dump(outcome))

    def upgrade(self, client_id: str) -> dict[str, Any]:
        """Start the client's upgrade run (a normal provision run); the answer is the
        rollout's record of the client (its step, run and reason)."""
        return dict(self._call("POST", f"{self.base}/clients/{client_id}/upgrade"))

    def steps(self, wave: int) -> dict[str, dict[str, Any]]:
        view = self.view()
        return {c["client_id"]: c for c in view["waves"][wave]["clients"]}

    def end_wave(self, wave: int) -> WaveEnd:
        return WaveEnd.model_validate(self._call("POST", f"{self.base}/waves/{wave}/end"))

    def close(self) -> None:
        self.http.close()
