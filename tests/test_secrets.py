"""Reading the connection string a hospital's outputs name: from Secret Manager (the drongo
emulator over a real socket, through the google-cloud-secret-manager client) and from the
localcloud secret store."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from flows.clouds.gcp import read_gcp_secret, secret_manager_client
from flows.clouds.local import read_local_secret
from flows.settings import Settings
from infrastructure.localcloud.resources.secret import Secret
from infrastructure.localcloud.store import open_store
from tests.emulators.drongo import drongo_url

__all__ = ["drongo_url"]  # the fixture, imported explicitly

URL = "mysql+pymysql://u_550e8400e29b41d4a716:pw%2Bx@10.20.0.3:3306/city_general_hospital"


def test_read_gcp_secret_from_the_secret_manager_emulator(drongo_url: str) -> None:
    settings = Settings(secret_manager_endpoint=drongo_url)
    client = secret_manager_client(settings)
    secret = client.create_secret(
        parent="projects/medical-circles",
        secret_id=f"mysql-connection-{uuid.uuid4()}",
        secret={"replication": {"automatic": {}}},
    )
    first = client.add_secret_version(parent=secret.name, payload={"data": b"mysql+pymysql://old"})
    client.add_secret_version(parent=secret.name, payload={"data": URL.encode()})
    assert read_gcp_secret(secret.name, settings) == URL  # the latest version
    assert read_gcp_secret(first.name, settings) == "mysql+pymysql://old"


def test_a_missing_gcp_secret_is_an_error(drongo_url: str) -> None:
    from google.api_core.exceptions import NotFound

    with pytest.raises(NotFound):
        read_gcp_secret(
            f"projects/medical-circles/secrets/absent-{uuid.uuid4()}",
            Settings(secret_manager_endpoint=drongo_url),
        )


def test_read_local_secret_from_the_store_of_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    open_store(Secret.kind, root=settings.root / "localcloud").put(
        "s-abc", {"id": "s-abc", "value": URL}, private=True
    )
    assert read_local_secret("localcloud/secrets/s-abc", settings) == URL
    with pytest.raises(KeyError) as missing:
        read_local_secret("localcloud/secrets/s-def", settings)
    assert URL not in str(missing.value)
