"""Typed Terraform failures, so that retries happen only where a retry can help."""

from __future__ import annotations

import re
from collections.abc import Iterable


class TerraformError(Exception):
    """A Terraform command failed; ``kind`` names why, ``retryable`` says if waiting helps."""

    kind = "unknown"
    retryable = False

    def __init__(self, message: str, *, command: str = "", exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.command = command
        self.exit_code = exit_code

    def __str__(self) -> str:
        prefix = f"terraform {self.command}: " if self.command else ""
        return f"{prefix}{self.kind}: {self.message}"


class StateLockedError(TerraformError):
    kind = "state_locked"
    retryable = True
    lock_id: str | None = None
    """The lock's ID as Terraform printed it (``Lock Info: ID: ...``), to force-unlock it."""


class CredentialsError(TerraformError):
    kind = "credentials"


class ConfigurationError(TerraformError):
    kind = "configuration"


class TransientError(TerraformError):
    kind = "transient"
    retryable = True


class StalePlanError(TerraformError):
    """The state changed after the plan was saved: Terraform refuses to apply it."""

    kind = "stale_plan"


class UnknownTerraformError(TerraformError):
    kind = "unknown"


_PATTERNS: tuple[tuple[type[TerraformError], re.Pattern[str]], ...] = (
    (StalePlanError, re.compile(r"Saved plan is stale|plan file can no longer be applied", re.I)),
    (StateLockedError, re.compile(r"acquiring the state lock|state lock|ConditionalCheckFailed", re.I)),
    (
        CredentialsError,
        re.compile(
            r"no valid credential|credentials? (?:missing|not found|invalid)|NoCredentialProviders"
            r"|InvalidClientTokenId|AuthFailure|UnrecognizedClient|could not find default credentials"
            r"|invalid_grant|NotAuthenticated|401 Unauthorized|403 Forbidden|missing credential",
            re.I,
        ),
    ),
    (
        ConfigurationError,
        re.compile(
            r"Invalid value for variable|Unsupported argument|Missing required argument"
            r"|Reference to undeclared|Invalid reference|Unsupported attribute|Invalid function argument"
            r"|Failed to query available provider packages|Invalid provider configuration"
            r"|Error: Invalid|validation rule|No value for required variable|invalid size",
            re.I,
        ),
    ),
    (
        TransientError,
        re.compile(
            r"temporarily unavailable|Service Unavailable|\b50[234]\b|timeout|timed out|connection reset"
            r"|connection refused|RequestLimitExceeded|Throttling|rate exceeded|TLS handshake"
            r"|i/o timeout|no such host|unexpected EOF",
            re.I,
        ),
    ),
)


_LOCK_ID = re.compile(r"\bID:\s+([0-9a-fA-F-]{36})")


def classify(messages: Iterable[str], *, command: str, exit_code: int | None) -> TerraformError:
    """Map Terraform's diagnostics (or stderr) to the most specific error type."""
    lines = [m.strip() for m in messages if m and m.strip()]
    text = "\n".join(lines)
    headline = lines[0] if lines else f"exited with code {exit_code}"
    for error_type, pattern in _PATTERNS:
        if pattern.search(text):
            error = error_type(headline, command=command, exit_code=exit_code)
            if isinstance(error, StateLockedError) and (found := _LOCK_ID.search(text)):
                error.lock_id = found.group(1)
            return error
    return UnknownTerraformError(headline, command=command, exit_code=exit_code)
