"""The -json parser on recorded event streams, error classification, redaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.terraform.errors import (
    ConfigurationError,
    CredentialsError,
    StateLockedError,
    TransientError,
    UnknownTerraformError,
    classify,
)
from flows.terraform.events import parse_outputs, parse_stream
from flows.terraform.redact import MASK, Redactor, sensitive_values

DATA = Path(__file__).parent / "data"


def lines(name: str) -> list[str]:
    return (DATA / name).read_text().splitlines()


def test_apply_stream_gives_summary_and_outputs() -> None:
    result = parse_stream("apply", lines("apply_create.jsonl"))
    assert result.change_summary is not None
    assert (result.change_summary.add, result.change_summary.change) == (2, 0)
    assert result.change_summary.operation == "apply"
    instances = result.outputs["instances"].value
    assert [i["instance_id"][:2] for i in instances] == ["i-", "i-"]
    assert result.outputs["instances"].sensitive is False
    assert result.errors == []


def test_plan_stream_reports_drift() -> None:
    result = parse_stream("plan", lines("plan_drift.jsonl"), exit_code=2)
    assert result.drift == ["localcloud_instance.this[0]"]
    assert result.planned == ["create localcloud_instance.this[0]"]
    assert result.change_summary is not None and result.change_summary.add == 1


def test_provider_diagnostic_is_parsed_and_classified() -> None:
    result = parse_stream("apply", lines("apply_invalid_size.jsonl"), exit_code=1)
    [error] = result.errors
    assert error.summary == "invalid size 'huge'"
    assert error.address == "localcloud_instance.this[0]"
    err = classify([d.one_line() for d in result.errors], command="apply", exit_code=1)
    assert isinstance(err, ConfigurationError) and not err.retryable
    assert "invalid size 'huge'" in str(err)


def test_variable_validation_is_a_configuration_error() -> None:
    result = parse_stream("plan", lines("plan_invalid_variable.jsonl"), exit_code=1)
    err = classify([d.one_line() for d in result.errors], command="plan", exit_code=1)
    assert isinstance(err, ConfigurationError)
    assert "instance_name_prefix" in err.message


@pytest.mark.parametrize(
    ("message", "kind", "retryable"),
    [
        ("Error acquiring the state lock: ConditionalCheckFailedException", StateLockedError, True),
        (
            "error configuring S3 Backend: no valid credential sources for S3 Backend found",
            CredentialsError,
            False,
        ),
        ("503 Service Unavailable: localcloud is temporarily unavailable", TransientError, True),
        ("dial tcp: i/o timeout", TransientError, True),
        ("quota exceeded: localcloud refuses this create", UnknownTerraformError, False),
    ],
)
def test_classify(message: str, kind: type, retryable: bool) -> None:
    err = classify([message], command="apply", exit_code=1)
    assert type(err) is kind
    assert err.retryable is retryable


def test_non_json_lines_and_garbage_are_kept_as_text() -> None:
    result = parse_stream("init", ["Initializing the backend...", "{not json", ""])
    assert result.diagnostics == []


def test_output_json_parsing_keeps_sensitivity() -> None:
    outputs = parse_outputs('{"pw": {"sensitive": true, "type": "string", "value": "hunter22"}}')
    assert outputs["pw"].sensitive and outputs["pw"].value == "hunter22"


def test_redactor_masks_longest_first_and_nested_values() -> None:
    redact = Redactor(["abcd", "abcdefgh"])
    redact.add(sensitive_values({"a": ["zzzz-secret"], "b": 3}))
    assert redact("x abcdefgh y abcd zzzz-secret") == f"x {MASK} y {MASK} {MASK}"
    assert Redactor(["ab"])("ab") == "ab"  # too short to mask meaningfully


def test_secrets_are_masked_in_their_json_escaped_forms_too() -> None:
    """Terraform's -json lines escape quotes, backslashes, <, > and & (Go's encoder)."""
    import json as _json

    from flows.terraform.redact import MASK, Redactor

    secret = 'p"a\\s<s>&wörd'
    redact = Redactor([secret])
    go_line = '{"@message": "value: p\\"a\\\\s\\u003cs\\u003e\\u0026wörd"}'
    assert secret not in redact(secret) and MASK in redact(secret)
    assert 'p\\"a' not in redact(go_line) and MASK in redact(go_line), redact(go_line)
    py_line = _json.dumps({"m": secret})
    assert MASK in redact(py_line) and "s<s>" not in redact(py_line)
    assert MASK in redact(_json.dumps({"m": secret}, ensure_ascii=False))
