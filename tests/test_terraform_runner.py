"""The runner against real Terraform and localcloud, without Prefect: redaction,
typed errors, binary choice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flows.terraform.backends import local_backend
from flows.terraform.binary import find_binary, pinned_binary
from flows.terraform.errors import ConfigurationError
from flows.terraform.modules import MODULES
from flows.terraform.redact import Redactor
from flows.terraform.runner import Terraform
from flows.terraform.workspace import Workspace

SECRET = "Zm9vYmFyLXNlY3JldC12YWx1ZQ"


def test_pinned_binary_is_terraform_103_not_path() -> None:
    binary = find_binary(None)
    assert binary.version == "1.0.3"
    assert binary.path == pinned_binary().resolve()
    assert "site-packages" in str(binary.path)


def test_configured_binary_must_exist(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="TERRAFORM_BIN"):
        find_binary(tmp_path / "nope")


def test_sensitive_value_never_reaches_logs(settings: Any) -> None:
    """A provider error that echoes a sensitive input is masked in the log file and the
    run log; the value only exists in the 0600 tfvars file."""
    ws = Workspace(settings.root, "c-secret")
    ws.prepare("local", {}, local_backend(settings, "c-secret"))
    (ws.path / "terraform.tfvars.json").write_text(
        json.dumps({"client_id": "c", "instance_name_prefix": "web", "instance_count": 1, "size": SECRET})
    )
    logged: list[str] = []
    tf = Terraform(find_binary(None), ws, ws.environment(), redactor=Redactor([SECRET]), log=logged.append)
    tf.init()
    with pytest.raises(ConfigurationError) as info:
        tf.apply()
    assert SECRET not in str(info.value)
    assert any("invalid size '***'" in line for line in logged)
    assert SECRET not in "\n".join(logged)
    assert SECRET not in (ws.path / "apply.log").read_text()
    assert (ws.path / "apply.log").stat().st_mode & 0o777 == 0o600


def test_workspace_environment_overrides_the_shell(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", "/does/not/exist")
    monkeypatch.setenv("TF_LOG", "TRACE")
    env = Workspace(settings.root, "c").environment()
    assert Path(env["TF_CLI_CONFIG_FILE"]).is_file()
    assert "TF_LOG" not in env
    assert env["TF_IN_AUTOMATION"] == env["CHECKPOINT_DISABLE"] == "1" and env["TF_INPUT"] == "0"
    assert Path(env["TF_PLUGIN_CACHE_DIR"]).is_dir()


def test_unknown_module_is_refused(settings: Any) -> None:
    with pytest.raises(FileNotFoundError, match="no Terraform module"):
        Workspace(settings.root, "c").prepare("nope", {}, local_backend(settings, "c"))
    assert (MODULES / "local" / "main.tf").is_file()
