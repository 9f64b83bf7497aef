"""``.env.example``, generated from the settings model so it cannot drift from it:
``uv run python -m deployments.envexample`` writes it (``--check``: exit 1 when the file
differs). Every field of ``flows.settings.Settings``, by section, as a commented-out line
``# NAME=default`` under its description; then the variables read outside the model.
tests/test_settings_model.py fails when the committed file is not this text."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, SecretStr

from flows.settings import PROJECT_ROOT, SECTIONS, Settings

PATH = PROJECT_ROOT / ".env.example"
WIDTH = 96

HEADER = """\
tenantform's settings with their defaults, generated from flows/settings.py by
`uv run python -m deployments.envexample`: change the model, not this file.
Copy it to .env (read by the gateway, `tenantform up`/`deploy`, the workers and their flow
runs; the current directory's .env wins over the project's) and uncomment what you change."""

OUTSIDE: tuple[tuple[str, str, str], ...] = (
    ("PREFECT_API_URL", "http://127.0.0.1:4200/api", "Prefect's own: use that server (unset: up starts one)"),
    ("PREFECT_API_AUTH_STRING", "", "Prefect's own: the auth string of a protected Prefect server."),
    ("PREFECT_UI_URL", "", "Prefect's own: base of the run links in notifications (from PREFECT_API_URL)."),
    ("PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK", "gcs-bucket/results", "Prefect's own: shared results."),
    ("LOCALCLOUD_DATABASE_URL", "", "localcloud's objects in this PostgreSQL (unset: the data dir)."),
    ("LOCALCLOUD_MYSQL_ADMIN_URL", "mysql+pymysql://root@127.0.0.1:3306", "localcloud SQL on MariaDB."),
    ("AWS_ACCESS_KEY_ID", "", "AWS credentials of a worker (the AWS SDK and Terraform read them)."),
    ("AWS_SECRET_ACCESS_KEY", "", ""),
    ("AWS_DEFAULT_REGION", "us-east-2", ""),
    ("OCI_TENANCY_OCID", "", "OCI credentials of a worker (passed to Terraform as TF_VAR_*)."),
    ("OCI_USER_OCID", "", ""),
    ("OCI_FINGERPRINT", "", ""),
    ("OCI_PRIVATE_KEY_PATH", "", ""),
    ("TENANTFORM_WARM_SOCKET", "", "The warm process's socket (default: warm/engine.sock in the data dir)."),
    ("TENANTFORM_WARM_WAIT_SECONDS", "5", "How long a run's launcher waits for the warm process."),
)
"""Read outside the settings model (their owners read them; tests/test_settings_model.py
allows exactly these kinds): listed so that one file shows every variable."""


def _comment(text: str) -> list[str]:
    return textwrap.wrap(text, WIDTH - 2, initial_indent="# ", subsequent_indent="# ") if text else []


def _value(default: object) -> str:
    if default is None or isinstance(default, SecretStr):
        return ""
    if isinstance(default, bool):
        return str(default).lower()
    return str(default)


def _section(section: type[BaseModel], title: str) -> list[str]:
    rule = f"# --- {title} "
    return [rule + "-" * (WIDTH - len(rule)), *_comment(" ".join((section.__doc__ or "").split()))]


def render() -> str:
    names = Settings.env_names()
    lines = _comment(" ".join(HEADER.split()))
    for section in SECTIONS:
        lines += ["", *_section(section, section.__name__.removesuffix("Section").lower())]
        for name in section.model_fields:
            field = Settings.model_fields[name]
            lines += ["", *_comment(field.description or ""), f"# {names[name]}={_value(field.default)}"]
    lines += ["", *_section(Settings, "read outside the settings model")]
    lines[-1] = "# Prefect's own, the clouds' credentials, localcloud's, the warm process's plumbing."
    for name, example, about in OUTSIDE:
        lines += (["", *_comment(about)] if about else []) + [f"# {name}={example}"]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    text = render()
    if args == ["--check"]:
        same = PATH.exists() and PATH.read_text() == text
        if not same:
            print(f"{PATH} is out of date: run python -m deployments.envexample", file=sys.stderr)
        return 0 if same else 1
    if args:
        print("usage: python -m deployments.envexample [--check]", file=sys.stderr)
        return 2
    Path(PATH).write_text(text)
    print(f"wrote {PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
