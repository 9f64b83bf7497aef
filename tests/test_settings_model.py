"""One settings model (flows/settings.py): every variable keeps its name, ``.env.example``
is generated from it, and no module reads one of its variables (or a new tenantform one)
from the environment behind its back."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import SecretStr

from deployments.envexample import PATH, render
from flows.settings import Settings, get_settings

ROOT = Path(__file__).resolve().parents[1]
SETTINGS_MODULE = ROOT / "flows" / "settings.py"

# The names the seeds, README, docs, compose and tests use: a rename fails here.
ENV_NAMES = {
    # engine
    "TENANTFORM_DATA_DIR", "TERRAFORM_BIN", "LOG_FORMAT", "TASK_RETRIES", "TASK_RETRY_DELAY_SECONDS",
    "FLEET_CONCURRENCY", "SWEEP_SHARD_SIZE", "LOCK_TIMEOUT", "TENANTFORM_GATEWAY_URL", "RECONCILE_CRON",
    "POLICY_DIR", "HEARTBEAT_LOST_SECONDS",
    "APPROVAL_TIMEOUT_SECONDS", "STATE_BACKEND", "STATE_PG_CONN_STR", "GCP_PROJECT_ID", "GCP_REGION",
    "STATE_BUCKET_NAME", "PASSWORD_LENGTH", "DELETION_PROTECTION", "SECRET_MANAGER_ENDPOINT",
    "GOOGLE_CREDENTIALS_FILE", "GCP_CREDENTIALS_BLOCK", "CLOUD_STATE_BACKEND", "STATE_LOCK_TABLE",
    "STATE_REGION", "STATE_S3_ENDPOINT", "OCI_SERVICE_ENDPOINT",
    "MODULE_REVISIONS_DIR", "MODULE_REVISION_LABEL", "MODULES_DIR",
    # gateway
    "API_KEY", "API_USERNAME", "API_PASSWORD", "DATABASE_URL", "DISPATCH_INTERVAL_SECONDS",
    "SYNC_INTERVAL_SECONDS", "RATE_LIMIT_PER_SECOND", "MAX_BODY_BYTES", "RATE_LIMIT_BURST",
    "CALLBACK_SECRET", "LATE_RUN_SECONDS", "PENDING_RUN_SECONDS", "DATABASE_BACKUP_BUCKET",
    "DATABASE_BACKUP_INTERVAL_SECONDS", "DATABASE_BACKUP_OBJECT",
    # notifications
    "NOTIFY_WEBHOOK_URL", "NOTIFY_EMAIL_TO", "SMTP_HOST", "SMTP_PORT", "SMTP_SECURITY",
    "SMTP_USERNAME", "SMTP_PASSWORD", "SMTP_FROM",
    # CLI
    "TENANTFORM_URL",
}  # fmt: skip

THIRD_PARTY_PREFIXES = {
    "PREFECT_": "Prefect's own settings: Prefect reads them, we pass them on",
    "LOCALCLOUD_": "localcloud's (infrastructure/localcloud), the emulator, not tenantform's",
    "TF_": "Terraform's own variables (TF_VAR_*), built for its processes",
    "AWS_": "the AWS SDK's and Terraform's credentials",
    "OCI_": "the OCI SDK's credentials (OCI_SERVICE_ENDPOINT, ours, is in the model)",
    "STORAGE_EMULATOR_HOST": "the GCS client's own switch to an emulator",
    "PATH": "the system's search path, extended for child processes",
}
"""Variables that belong to other programs: read (or passed on) where those programs need them."""

ALLOWED: dict[tuple[str, str], str] = {
    # The warm process's plumbing ----------------------------------------------------------
    ("deployments/warm/launch.py", "TENANTFORM_DATA_DIR"): "stdlib-only launcher (a pydantic import"
    " would cost the start it exists to save): mirrors Settings.root to find the socket",
    ("deployments/warm/launch.py", "TENANTFORM_WARM_SOCKET"): "warm socket: launcher and server"
    " must agree, both through launch.socket_path",
    ("deployments/warm/launch.py", "TENANTFORM_WARM_WAIT_SECONDS"): "stdlib-only launcher's wait",
    ("deployments/warm/launch.py", "TENANTFORM_WARM_DEBUG"): "stdlib-only launcher's debug switch",
    ("deployments/warm/launch.py", "*"): "hands the run's whole environment to the warm process",
    ("deployments/warm/session.py", "TENANTFORM_WARM_TRACE_IMPORTS"): "read per run from the"
    " run's own environment, after the fork took it over",
    ("deployments/warm/session.py", "*"): "a forked run takes over the environment it was sent",
    ("deployments/warm/server.py", "*"): "strips its own environment down to paths (ENV_KEEP)",
    # Environments built for child processes -----------------------------------------------
    ("deployments/stack.py", "*"): "`up` builds its children's environments from its own",
    ("deployments/worker.py", "*"): "the worker's environment, passed on to `prefect worker`",
    ("flows/terraform/workspace.py", "*"): "Terraform's environment, scrubbed of ours",
    # Third-party variables looked up by a name held in a variable ------------------------
    ("flows/clouds/base.py", "*"): "which cloud credentials (AWS_*, OCI_*) a target lacks",
    ("flows/clouds/oci/request.py", "*"): "OCI_* credentials mapped to TF_VAR_*",
    ("deployments/doctor.py", "*"): "which OCI_* credentials are missing (goes when doctor"
    " asks the target catalogue instead)",
}
"""(file, variable) pairs read outside the model, and why; ``*``: the whole environment,
or a name held in a variable."""


def _is_environ(node: ast.AST) -> bool:
    """``os.environ`` or a bare ``environ``."""
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id == "environ"
    )


def _constants(tree: ast.Module) -> dict[str, str]:
    """Module-level ``NAME = "..."`` (``SOCKET_ENV = "TENANTFORM_WARM_SOCKET"``)."""
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name) and isinstance(node.value.value, str):
                    found[target.id] = node.value.value
    return found


def _key(node: ast.AST, constants: dict[str, str]) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name) and node.id in constants:
        return constants[node.id]
    return "*"


def environment_reads(path: Path) -> set[str]:
    """The variables a module reads from the environment: ``os.environ[...]``, ``.get``,
    ``in``, ``os.getenv``, ``env.get``/``env[...]`` on an environment copy, typer's
    ``envvar=``; ``*`` for any other use of ``os.environ`` or a name held in a variable."""
    tree = ast.parse(path.read_text(), str(path))
    constants = _constants(tree)
    reads: set[str] = set()
    keyed: set[int] = set()  # os.environ nodes accounted for by a keyed read
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr == "get" and node.args:
                receiver = func.value
                if _is_environ(receiver) or (isinstance(receiver, ast.Name) and receiver.id == "env"):
                    reads.add(_key(node.args[0], constants))
                    keyed.add(id(receiver))
            elif (isinstance(func, ast.Attribute) and func.attr == "getenv") or (
                isinstance(func, ast.Name) and func.id == "getenv"
            ):
                reads.add(_key(node.args[0], constants) if node.args else "*")
            for keyword in node.keywords:
                if keyword.arg == "envvar":
                    reads.add(_key(keyword.value, constants))
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            if _is_environ(node.value) or (isinstance(node.value, ast.Name) and node.value.id == "env"):
                reads.add(_key(node.slice, constants))
                keyed.add(id(node.value))
        elif isinstance(node, ast.Compare) and any(_is_environ(c) for c in node.comparators):
            reads.add(_key(node.left, constants))
            keyed.update(id(c) for c in node.comparators)
    for node in ast.walk(tree):
        if _is_environ(node) and id(node) not in keyed:
            reads.add("*")
    return reads


def _third_party(name: str) -> bool:
    return any(name.startswith(prefix) for prefix in THIRD_PARTY_PREFIXES)


def test_one_settings_model_keeps_every_variable_name() -> None:
    assert set(Settings.env_names().values()) == ENV_NAMES
    assert len(Settings.env_names()) == len(ENV_NAMES), "two fields read the same variable"
    subclasses = []
    for layer in ("infrastructure", "flows", "api", "deployments"):
        for path in (ROOT / layer).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ClassDef) and any(
                    isinstance(b, ast.Name | ast.Attribute) and ast.unparse(b).endswith("BaseSettings")
                    for b in node.bases
                ):
                    subclasses.append(f"{path.relative_to(ROOT)}:{node.name}")
    assert subclasses == ["flows/settings.py:Settings"]


def test_secrets_stay_secret() -> None:
    secrets = {n for n, f in Settings.model_fields.items() if f.annotation == SecretStr | None}
    assert {"api_key", "api_password", "callback_secret", "state_pg_conn_str"} <= secrets
    assert {"notify_webhook_url", "smtp_password"} <= secrets
    shown = repr(Settings(_env_file=None, api_key="k-0123456789", smtp_password="p-0123456789"))  # type: ignore[call-arg]
    assert "0123456789" not in shown


def test_the_gateway_reads_the_same_cached_settings() -> None:
    from api.settings import GatewaySettings, get_gateway_settings

    assert GatewaySettings is Settings
    assert get_gateway_settings is get_settings
    get_settings.cache_clear()
    assert get_settings() is get_settings()


def test_env_example_is_generated_from_the_model() -> None:
    assert PATH.read_text() == render(), "run: uv run python -m deployments.envexample"
    for name in ENV_NAMES:
        assert f"\n# {name}=" in render()


def test_env_example_values_are_the_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Uncommented, every line with a value reads back as the model's default."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    env = tmp_path / ".env"
    env.write_text(
        "".join(
            line[2:] + "\n"
            for line in render().splitlines()
            if line.startswith("# ")
            and "=" in line
            and line.split("=", 1)[0][2:] in ENV_NAMES
            and line.split("=", 1)[1]
        )
    )
    assert env.read_text().count("\n") > 20
    from_file = Settings(_env_file=env)  # type: ignore[call-arg]
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert from_file.model_dump() == defaults.model_dump()


def test_no_module_reads_a_setting_from_the_environment_behind_the_model() -> None:
    held = set(Settings.env_names().values())
    wrong = []
    used = set()
    for layer in ("api", "flows", "deployments"):
        for path in sorted((ROOT / layer).rglob("*.py")):
            if path == SETTINGS_MODULE:
                continue
            rel = str(path.relative_to(ROOT))
            for name in environment_reads(path):
                if (rel, name) in ALLOWED:
                    used.add((rel, name))
                elif name in held:
                    wrong.append(f"{rel}: {name} is a setting: read it from flows.settings.get_settings()")
                elif name == "*" or name.upper().startswith("TENANTFORM") or not _third_party(name):
                    wrong.append(f"{rel}: reads {name} from the environment: add it to the settings model")
    assert wrong == []
    # Not asserted: every entry still used (deployments/doctor.py's is on its way out while
    # another change is in flight); an unused entry allows only what it says.
    assert used, "the allow-list matches nothing: the static check has stopped seeing reads"


def test_the_static_check_sees_the_ways_of_reading(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import os\nfrom os import environ, getenv\nNAME = 'API_KEY'\n"
        "a = os.environ.get('TASK_RETRIES')\nb = os.environ['LOG_FORMAT']\nc = getenv('SMTP_HOST')\n"
        "d = environ.get(NAME)\ne = 'TENANTFORM_URL' in os.environ\nf = dict(os.environ)\n"
        "def g(env): return env.get('DATABASE_URL')\nh = typer.Option(envvar='TENANTFORM_DATA_DIR')\n"
    )
    assert environment_reads(probe) == {
        "TASK_RETRIES", "LOG_FORMAT", "SMTP_HOST", "API_KEY", "TENANTFORM_URL", "*", "DATABASE_URL",
        "TENANTFORM_DATA_DIR",
    }  # fmt: skip
