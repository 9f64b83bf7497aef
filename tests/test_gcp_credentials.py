"""GCP credentials: terraform-sa.json when present, else ADC, never logged."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from flows.clouds.gcp import CredentialsUnavailable, gcp_credentials
from flows.settings import Settings
from flows.terraform.backends import google_credentials_env


def service_account_file(path: Path) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "hospital-project",
                "private_key_id": "k1",
                "private_key": pem,
                "client_email": "terraform@hospital-project.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": "https://oauth2.googleapis.com/token",
            }
        )
    )
    path.chmod(0o600)
    return pem


def test_service_account_file_is_used_and_never_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sa = tmp_path / "terraform-sa.json"
    pem = service_account_file(sa)
    settings = Settings(google_credentials_file=sa)
    with caplog.at_level(logging.DEBUG):
        creds, project = gcp_credentials(settings)
    assert project == "hospital-project"
    assert creds.service_account_email == "terraform@hospital-project.iam.gserviceaccount.com"
    assert google_credentials_env(settings) == {"GOOGLE_APPLICATION_CREDENTIALS": str(sa.resolve())}
    assert pem.splitlines()[1] not in caplog.text


def test_without_file_or_adc_the_error_is_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no gcloud ADC file
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")  # no metadata server either
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    settings = Settings(google_credentials_file=tmp_path / "absent.json")
    with pytest.raises(CredentialsUnavailable, match="no GCP credentials"):
        gcp_credentials(settings)
    assert google_credentials_env(settings) == {}
