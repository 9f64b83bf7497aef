"""The docs: a short README that keeps the two set-up commands, and a site that builds
offline with `mkdocs build --strict` whose generated reference pages cover the code (every
path of the gateway's OpenAPI document, every variable of the settings models)."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_is_short_and_keeps_the_set_up_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    assert "make up" in readme
    assert "make test" in readme


def test_readme_links_point_at_pages_that_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert links
    assert [link for link in links if not (ROOT / link).is_file()] == []


def test_scale_out_recipe_block_is_in_the_docs() -> None:
    text = (ROOT / "docs" / "how-to" / "scale-out.md").read_text()
    assert re.search(r"<!-- recipe:start -->\n```bash\n.*?```\n<!-- recipe:end -->", text, re.S)


def test_site_builds_strict_offline_and_covers_the_code(tmp_path: Path) -> None:
    out = tmp_path / "site"
    build = subprocess.Popen(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # While mkdocs builds (and imports the gateway), this process asks the code itself.
        from deployments.docsgen import SETTINGS_MODELS, env_name, openapi_document

        paths = list(openapi_document()["paths"])
        env_names = [
            env_name(model, name, field)
            for model in SETTINGS_MODELS
            for name, field in model.model_fields.items()
        ]
        log, _ = build.communicate(timeout=240)
    finally:
        if build.poll() is None:
            build.kill()
            build.communicate()
    assert build.returncode == 0, log

    api = html.unescape((out / "reference" / "api" / "index.html").read_text())
    assert paths
    assert [p for p in paths if f"<code>{p}</code>" not in api] == []

    settings = html.unescape((out / "reference" / "settings" / "index.html").read_text())
    assert env_names
    assert [e for e in env_names if f"<code>{e}</code>" not in settings] == []

    cli = html.unescape((out / "reference" / "cli" / "index.html").read_text())
    for command in (
        "tenantform up",
        "tenantform worker",
        "tenantform clients list",
        "tenantform keys create",
    ):
        assert f"<code>{command}</code>" in cli

    targets = html.unescape((out / "reference" / "targets" / "index.html").read_text())
    from flows.targets import all_targets

    assert [t for t in all_targets() if f"<code>{t}</code>" not in targets] == []

    # Offline: no web fonts, nothing loaded from another host.
    index = (out / "index.html").read_text()
    assert "fonts.googleapis.com" not in index
    assert not re.search(r"<(script|link)[^>]+(src|href)=\"https?://", index)
