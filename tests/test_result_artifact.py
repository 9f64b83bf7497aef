"""The result artifact: tables for people, the same result as JSON for the gateway.
(How the tables look in the Prefect UI: tests/test_browser.py.)"""

from __future__ import annotations

from flows.contract import Operation, ResourceChange, RunResult, read_published, result_markdown
from flows.terraform.events import ChangeSummary


def _result(**extra: object) -> RunResult:
    return RunResult(
        run_id="r-1",
        operation=Operation.provision,
        client_id="acme",
        target="local",
        terraform="/opt/terraform",
        outputs={"instances": [{"instance_id": "i-1", "note": "a|b\nc"}], "url": "http://10.0.0.1"},
        sensitive_outputs=["db_password"],
        change_summary=ChangeSummary(add=2, change=1, remove=0, operation="apply"),
        changes=[ResourceChange(address="localcloud_instance.this[0]", action="create")],
        **extra,  # type: ignore[arg-type]
    )


def test_tables_then_the_json_the_gateway_reads() -> None:
    result = _result(drift=["localcloud_bucket.logs"])
    markdown = result_markdown(result)
    assert read_published(markdown) == result
    lines = markdown.splitlines()
    assert "| apply | 2 | 1 | 0 |" in lines
    assert "| `url` | `http://10.0.0.1` |" in lines
    assert "| `db_password` | *sensitive, not shown* |" in lines
    assert "| `localcloud_instance.this[0]` | create |" in lines
    assert "| `localcloud_bucket.logs` |" in lines
    # A pipe or a newline in a value stays inside its cell.
    row = next(line for line in lines if line.startswith("| `instances`"))
    assert row.count(" | ") == 1 and "a\\|b" in row


def test_no_drift_says_so_and_old_artifacts_still_parse() -> None:
    result = _result()
    assert "Drift: none." in result_markdown(result)
    fenced_only = f"```json\n{result.model_dump_json()}\n```"
    assert read_published(fenced_only) == result
