"""OCI pre-flight and read-back with the real `oci` SDK. No OCI emulator exists, so the
test runs a small HTTP server on loopback that answers the few REST calls used, and
verifies each request's signature against the key the test generated."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from flows.clouds import oci as oci_cloud
from flows.clouds.errors import PreflightError, ReadbackError
from flows.clouds.oci import OciInputs
from flows.jobs import Job
from flows.settings import Settings, get_settings

USER = "ocid1.user.oc1..alice"
TENANCY = "ocid1.tenancy.oc1..acme"
COMPARTMENT = "ocid1.compartment.oc1..prod"
SUBNET = "ocid1.subnet.oc1..web"
INSTANCE = "ocid1.instance.oc1..bm1"

OBJECTS: dict[str, dict[str, Any]] = {
    f"/20160918/users/{USER}": {"id": USER, "name": "alice", "lifecycleState": "ACTIVE"},
    f"/20160918/compartments/{COMPARTMENT}": {"id": COMPARTMENT, "name": "prod", "lifecycleState": "ACTIVE"},
    f"/20160918/subnets/{SUBNET}": {"id": SUBNET, "cidrBlock": "10.0.1.0/24", "lifecycleState": "AVAILABLE"},
    f"/20160918/instances/{INSTANCE}": {
        "id": INSTANCE,
        "shape": "BM.Standard3.64",
        "lifecycleState": "RUNNING",
    },
    "/20160918/vnics/ocid1.vnic.oc1..v1": {
        "id": "ocid1.vnic.oc1..v1",
        "isPrimary": True,
        "privateIp": "10.0.1.7",
        "publicIp": "192.0.2.7",
    },
}


@dataclass
class Seen:
    """One request as the stub received it."""

    path: str
    query: dict[str, list[str]]
    key_id: str
    signed: list[str]
    verified: bool


class Stub(BaseHTTPRequestHandler):
    public_key: Any = None
    key_id = ""  # what the SDK must sign with: tenancy/user/fingerprint
    seen: list[Seen] = []  # noqa: RUF012 - shared on purpose
    objects: dict[str, dict[str, Any]] = OBJECTS  # a test may swap in its own

    def log_message(self, *args: Any) -> None:
        pass

    def _signature(self) -> tuple[str, list[str], bool]:
        """(keyId, the headers signed, whether the signature is the test key's over them)."""
        auth = self.headers.get("authorization", "")
        try:
            fields = dict(part.split("=", 1) for part in auth.removeprefix("Signature ").split(","))
        except ValueError:
            return "", [], False
        fields = {k: v.strip('"') for k, v in fields.items()}
        key_id, signed = fields.get("keyId", ""), fields.get("headers", "").split()
        lines = []
        for name in signed:
            value = f"get {self.path}" if name == "(request-target)" else self.headers.get(name, "")
            lines.append(f"{name}: {value}")
        try:
            self.public_key.verify(
                base64.b64decode(fields["signature"]),
                "\n".join(lines).encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except Exception:
            return key_id, signed, False
        return key_id, signed, key_id.split("/")[:2] == [TENANCY, USER]

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        key_id, signed, verified = self._signature()
        self.seen.append(Seen(path, parse_qs(query), key_id, signed, verified))
        if not verified:
            self._send(401, {"code": "NotAuthenticated", "message": "bad signature"})
        elif path == "/20160918/vnicAttachments":
            ok = f"instanceId={INSTANCE}" in query
            self._send(
                200,
                [{"vnicId": "ocid1.vnic.oc1..v1", "instanceId": INSTANCE, "lifecycleState": "ATTACHED"}]
                if ok
                else [],
            )
        elif path in self.objects:
            self._send(200, self.objects[path])
        else:
            self._send(404, {"code": "NotAuthorizedOrNotFound", "message": "not found"})

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("opc-request-id", "stub")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def oci_stub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "oci_api_key.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    pem.chmod(0o600)
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fingerprint = ":".join(f"{b:02x}" for b in hashlib.md5(der).digest())
    Stub.public_key = key.public_key()
    Stub.seen = []
    Stub.objects = OBJECTS
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    for name, value in {
        "OCI_TENANCY_OCID": TENANCY,
        "OCI_USER_OCID": USER,
        "OCI_FINGERPRINT": fingerprint,
        "OCI_PRIVATE_KEY_PATH": str(pem),
        "OCI_SERVICE_ENDPOINT": url,
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    Stub.key_id = f"{TENANCY}/{USER}/{fingerprint}"
    yield url
    server.shutdown()
    get_settings.cache_clear()


def request(**change: Any) -> OciInputs:
    config = {
        "region": "eu-frankfurt-1",
        "shape": "BM.Standard3.64",
        "compartment_id": COMPARTMENT,
        "availability_domain": "Uocm:EU-FRANKFURT-1-AD-1",
        "subnet_id": SUBNET,
        "image_id": "ocid1.image.oc1..img",
        **change,
    }
    return OciInputs.model_validate(
        {"cloud_provider": "oci", "provider_config": config, "instance_name_prefix": "bm", "count": 1}
    )


SIGNED = {"(request-target)", "date", "host"}
"""What the OCI signature of a GET covers, at least."""


def test_preflight_with_signed_requests(oci_stub: str) -> None:
    """The user, the compartment and the subnet of the request, each read once, in that
    order, each request signed with the configured key over its target, date and host."""
    assert oci_cloud.preflight(request()) is None
    assert [r.path for r in Stub.seen] == [
        f"/20160918/users/{USER}",
        f"/20160918/compartments/{COMPARTMENT}",
        f"/20160918/subnets/{SUBNET}",
    ]
    for seen in Stub.seen:
        assert seen.verified, seen
        assert seen.key_id == Stub.key_id
        assert set(seen.signed) >= SIGNED, seen.signed


def test_preflight_names_missing_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OCI_TENANCY_OCID", "OCI_USER_OCID", "OCI_FINGERPRINT", "OCI_PRIVATE_KEY_PATH"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(PreflightError) as info:
        oci_cloud.preflight(request())
    for name in ("OCI_TENANCY_OCID", "OCI_USER_OCID", "OCI_FINGERPRINT", "OCI_PRIVATE_KEY_PATH"):
        assert name in str(info.value)


def test_preflight_names_unknown_compartment_and_subnet(oci_stub: str) -> None:
    with pytest.raises(
        PreflightError, match=re.escape("compartment_id ocid1.compartment.oc1..nope not found")
    ):
        oci_cloud.preflight(request(compartment_id="ocid1.compartment.oc1..nope"))
    with pytest.raises(PreflightError, match=re.escape("subnet_id ocid1.subnet.oc1..nope not found")):
        oci_cloud.preflight(request(subnet_id="ocid1.subnet.oc1..nope"))


def test_a_wrong_key_is_rejected(oci_stub: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    wrong = tmp_path / "wrong.pem"
    wrong.write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    monkeypatch.setenv("OCI_PRIVATE_KEY_PATH", str(wrong))
    with pytest.raises(PreflightError) as info:
        oci_cloud.preflight(request())
    assert str(info.value) == "OCI credentials rejected (401 NotAuthenticated) for OCI_USER_OCID"
    # Signed with the other key under the configured key id: refused, and nothing else asked.
    assert [(r.path, r.key_id, r.verified) for r in Stub.seen] == [
        (f"/20160918/users/{USER}", Stub.key_id, False)
    ]


def test_readback(oci_stub: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The instance, its VNIC attachments in the request's compartment, its primary VNIC:
    what Terraform output is confirmed against what OCI says."""
    outputs = {"instances": [{"instance_id": INSTANCE, "private_ip": "10.0.1.7", "public_ip": "192.0.2.7"}]}
    assert oci_cloud.readback(request(), outputs) == outputs
    assert [(r.path, r.query) for r in Stub.seen] == [
        (f"/20160918/instances/{INSTANCE}", {}),
        ("/20160918/vnicAttachments", {"compartmentId": [COMPARTMENT], "instanceId": [INSTANCE]}),
        ("/20160918/vnics/ocid1.vnic.oc1..v1", {}),
    ]
    assert all(r.verified for r in Stub.seen)

    moved = {"instances": [{**outputs["instances"][0], "private_ip": "10.0.1.99"}]}
    with pytest.raises(ReadbackError) as info:
        oci_cloud.readback(request(), moved)
    assert str(info.value) == f"instance {INSTANCE} private IP differs from Terraform's output"

    stopped = {**OBJECTS[f"/20160918/instances/{INSTANCE}"], "lifecycleState": "STOPPED"}
    monkeypatch.setattr(Stub, "objects", {**OBJECTS, f"/20160918/instances/{INSTANCE}": stopped})
    with pytest.raises(ReadbackError) as info:
        oci_cloud.readback(request(), outputs)
    assert str(info.value) == f"instance {INSTANCE} is STOPPED, not RUNNING"

    Stub.seen.clear()
    with pytest.raises(ReadbackError) as info:
        oci_cloud.readback(request(), {"instances": [{"instance_id": "ocid1.instance.oc1..gone"}]})
    assert str(info.value) == "instance ocid1.instance.oc1..gone does not exist in OCI"
    assert [r.path for r in Stub.seen] == ["/20160918/instances/ocid1.instance.oc1..gone"]


def test_instances_are_tagged_with_the_client_and_the_run(tmp_path: Path) -> None:
    """The ``client_id`` tag names the client, ``request_id`` the run that applied the stack
    (the module's ``run_id``, from the job's ``StackContext``)."""
    job = Job.create(
        Settings(data_dir=tmp_path), "client-1", "oci-baremetal", request().model_dump(), run_id="run-7"
    )
    job.prepare()
    tfvars = json.loads((job.workspace.path / "terraform.tfvars.json").read_text())
    assert (tfvars["client_id"], tfvars["run_id"]) == ("client-1", "run-7")
    assert "request_id" not in tfvars
    text = (job.workspace.path / "main.tf").read_text()
    assert re.search(r"\bclient_id\s+= var\.client_id\n", text), text
    assert re.search(r"\brequest_id\s+= var\.run_id\n", text), text
    assert 'ignore_changes = [freeform_tags["request_id"]]' in text, "later runs must not retag"
