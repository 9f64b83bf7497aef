"""Policy as code: Rego policies (conftest style: ``deny`` and ``warn`` rules that return
messages) evaluated in-process, by the regorus engine, on the JSON of each saved plan
before it is applied. See ``flows.policy.engine`` and docs/how-to/policies.md."""

from flows.policy.engine import (
    BUILTIN_DIR,
    PolicyDenied,
    PolicyError,
    PolicySet,
    PolicyTestResult,
    denied,
    plan_document,
)

__all__ = [
    "BUILTIN_DIR",
    "PolicyDenied",
    "PolicyError",
    "PolicySet",
    "PolicyTestResult",
    "denied",
    "plan_document",
]
