"""AWS pre-flight and read-back against moto server over loopback, the S3 state backend
with DynamoDB locking under real Terraform, and the gateway's answer without credentials."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import boto3
import httpx
import pytest

from flows.clouds import aws as aws_cloud
from flows.clouds.aws import AwsInputs
from flows.clouds.errors import PreflightError, ReadbackError
from flows.jobs import Job
from flows.settings import Settings
from flows.terraform.errors import StateLockedError
from tests.emulators.moto import aws, moto_url

__all__ = ["aws", "moto_url"]

REGION = "us-east-2"


@pytest.fixture
def network(aws: str) -> dict[str, Any]:
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.1.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName=f"g{uuid.uuid4().hex[:6]}", Description="t", VpcId=vpc)[
        "GroupId"
    ]
    other_vpc = ec2.create_vpc(CidrBlock="10.2.0.0/16")["Vpc"]["VpcId"]
    stray = ec2.create_security_group(GroupName="stray", Description="t", VpcId=other_vpc)["GroupId"]
    seed = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, SubnetId=subnet)["Instances"][0]
    ami = ec2.create_image(InstanceId=seed["InstanceId"], Name="base")["ImageId"]
    return {"subnet": subnet, "group": group, "stray_group": stray, "ami": ami}


def request(net: dict[str, Any], **change: Any) -> AwsInputs:
    config = {
        "region": REGION,
        "instance_type": "t2.micro",
        "subnet_id": net["subnet"],
        "security_group_ids": [net["group"]],
        "ami_id": net["ami"],
        **change,
    }
    return AwsInputs.model_validate(
        {"cloud_provider": "aws", "provider_config": config, "instance_name_prefix": "web", "count": 1}
    )


@dataclass
class Call:
    """One AWS call as it went to moto: the service and region it was signed for, and its
    Query API parameters (EC2 and STS take them as a form body)."""

    service: str
    region: str
    params: dict[str, str]

    @property
    def action(self) -> str:
        return self.params.get("Action", "")


class Recorder(BaseHTTPRequestHandler):
    """A pass-through to moto that keeps every call it forwards."""

    upstream = ""
    calls: list[Call] = []  # noqa: RUF012 - shared on purpose

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        scope = re.search(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/", self.headers.get("authorization", ""))
        region, service = scope.groups() if scope else ("", "")
        params = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        self.calls.append(Call(service, region, params))
        skip = {"host", "content-length", "connection", "accept-encoding"}
        answer = httpx.post(
            self.upstream + self.path,
            content=body,
            headers={k: v for k, v in self.headers.items() if k.lower() not in skip},
            timeout=30,
        )
        self.send_response(answer.status_code)
        self.send_header("content-type", answer.headers.get("content-type", "text/xml"))
        self.send_header("content-length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)


@pytest.fixture
def recorded(network: dict[str, Any], aws: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Call]]:
    """boto3 pointed at a recorder in front of moto, once the network is made."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    Recorder.upstream, Recorder.calls = aws, []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.server_address[1]}")
    try:
        yield Recorder.calls
    finally:
        server.shutdown()
        server.server_close()


def test_preflight_passes_for_real_ids(network: dict[str, Any], recorded: list[Call]) -> None:
    """The credentials, then each id of the request, asked of the request's region."""
    assert aws_cloud.preflight(request(network)) is None
    assert [(c.service, c.region, c.params) for c in recorded] == [
        ("sts", REGION, {"Action": "GetCallerIdentity", "Version": "2011-06-15"}),
        (
            "ec2",
            REGION,
            {"Action": "DescribeSubnets", "Version": "2016-11-15", "SubnetId.1": network["subnet"]},
        ),
        (
            "ec2",
            REGION,
            {"Action": "DescribeSecurityGroups", "Version": "2016-11-15", "GroupId.1": network["group"]},
        ),
        ("ec2", REGION, {"Action": "DescribeImages", "Version": "2016-11-15", "ImageId.1": network["ami"]}),
    ]


def test_preflight_names_missing_credentials(
    network: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(PreflightError, match="AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"):
        aws_cloud.preflight(request(network))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"subnet_id": "subnet-0000dead"}, "subnet_id subnet-0000dead not found"),
        ({"security_group_ids": ["sg-0000dead"]}, "security group sg-0000dead not found"),
        ({"ami_id": "ami-0000dead"}, "ami_id ami-0000dead not found"),
    ],
)
def test_preflight_names_the_wrong_id(
    network: dict[str, Any], recorded: list[Call], change: dict[str, Any], message: str
) -> None:
    with pytest.raises(PreflightError, match=message):
        aws_cloud.preflight(request(network, **change))
    # Failed at the first answer naming the id: asked once, not retried, nothing asked after.
    wrong = next(iter(change.values()))
    wrong = wrong[0] if isinstance(wrong, list) else wrong
    assert wrong in recorded[-1].params.values(), recorded[-1]
    assert [c.action for c in recorded].count(recorded[-1].action) == 1


def test_preflight_refuses_a_security_group_of_another_vpc(network: dict[str, Any]) -> None:
    with pytest.raises(PreflightError, match="not in the VPC"):
        aws_cloud.preflight(request(network, security_group_ids=[network["stray_group"]]))


def test_readback_confirms_running_instances_and_catches_terminated(network: dict[str, Any]) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    made = ec2.run_instances(ImageId=network["ami"], MinCount=1, MaxCount=1, SubnetId=network["subnet"])
    instance = made["Instances"][0]
    outputs = {
        "instances": [
            {
                "instance_id": instance["InstanceId"],
                "private_ip": instance["PrivateIpAddress"],
                "public_ip": instance.get("PublicIpAddress"),
            }
        ]
    }
    assert aws_cloud.readback(request(network), outputs) == outputs
    ec2.terminate_instances(InstanceIds=[instance["InstanceId"]])
    with pytest.raises(ReadbackError, match="terminated"):
        aws_cloud.readback(request(network), outputs)
    missing = {"instances": [{"instance_id": "i-0123456789abcdef0", "private_ip": "10.1.1.9"}]}
    with pytest.raises(ReadbackError, match="does not exist"):
        aws_cloud.readback(request(network), missing)


def test_s3_backend_keeps_state_per_client_and_locks(
    aws: str, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real Terraform 1.0.3 on the s3 backend (moto): state under {client}/terraform.tfstate,
    and a second apply while the first holds the DynamoDB lock fails as StateLockedError."""
    job, cid, _held = _s3_job(aws, settings)
    s3 = boto3.client("s3", region_name=REGION)
    bucket = job.backend.config["bucket"]
    monkeypatch.setenv("LOCALCLOUD_CREATE_DELAY_SECONDS", "8")  # read when a Terraform is made
    held: list[Any] = []
    holder = threading.Thread(target=lambda: held.append(job.terraform().apply()))
    holder.start()
    time.sleep(4)
    try:
        with pytest.raises(StateLockedError):
            job.terraform().apply()
    finally:
        holder.join(timeout=120)
    assert held and held[0].change_summary and held[0].change_summary.add == 1, "the holder applies"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == [f"{cid}/terraform.tfstate"]
    monkeypatch.delenv("LOCALCLOUD_CREATE_DELAY_SECONDS")
    job.terraform().destroy()


def test_gateway_aws_request_without_credentials_fails_fast(gateway: Any, worker: Any) -> None:
    """The session worker has no AWS credentials: the run fails in pre-flight, naming them."""
    body = {
        "cloud_provider": "aws",
        "instance_name_prefix": "web",
        "count": 1,
        "provider_config": {
            "region": REGION,
            "instance_type": "t2.micro",
            "subnet_id": "subnet-12345",
            "security_group_ids": ["sg-12345"],
            "ami_id": "ami-12345",
        },
    }
    request_id = gateway.post("/provision", json=body).json()["request_id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = gateway.get(f"/status/{request_id}").json()
        if status["status"] != "in_progress":
            break
        time.sleep(0.5)
    assert status["status"] == "failed", status
    assert "AWS_ACCESS_KEY_ID" in status["message"] and "AWS_SECRET_ACCESS_KEY" in status["message"]
    run = gateway.get(f"/api/runs/{request_id}").json()
    assert not any(t["name"].startswith("terraform-") for t in run["tasks"]), "Terraform must not have run"


def test_instances_are_tagged_with_the_client_and_the_run(tmp_path: Path) -> None:
    """The ``client_id`` tag names the client, ``request_id`` the run that applied the stack
    (the module's ``run_id``, from the job's ``StackContext``)."""
    job = Job.create(
        Settings(data_dir=tmp_path),
        "client-1",
        "aws-ec2",
        {
            "cloud_provider": "aws",
            "instance_name_prefix": "web",
            "count": 1,
            "provider_config": {
                "region": REGION,
                "instance_type": "t2.micro",
                "subnet_id": "subnet-12345",
                "security_group_ids": ["sg-12345"],
                "ami_id": "ami-12345",
            },
        },
        run_id="run-7",
    )
    job.prepare()
    tfvars = json.loads((job.workspace.path / "terraform.tfvars.json").read_text())
    assert (tfvars["client_id"], tfvars["run_id"]) == ("client-1", "run-7")
    assert "request_id" not in tfvars
    text = "".join(p.read_text() for p in sorted(job.workspace.path.glob("*.tf")))
    assert re.search(r"\bclient_id\s+= var\.client_id\n", text), text
    assert re.search(r"\brequest_id\s+= var\.run_id\n", text), text
    assert 'ignore_changes = [tags["request_id"]]' in text, "later runs must not retag"


def _s3_job(aws: str, settings: Any) -> tuple[Job, str, Any]:
    bucket = f"state-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", region_name=REGION).create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    table = f"locks-{uuid.uuid4().hex[:6]}"
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    s3_settings = Settings(
        data_dir=settings.data_dir,
        cloud_state_backend="s3",
        state_bucket_name=bucket,
        state_lock_table=table,
        state_region=REGION,
        state_s3_endpoint=aws,
        lock_timeout="0s",
    )
    from flows.terraform.backends import cloud_backend

    cid = str(uuid.uuid4())
    job = Job.create(
        s3_settings, cid, "local", {"cloud_provider": "local", "instance_name_prefix": "lk", "count": 1}
    )
    job.backend = cloud_backend(s3_settings, cid)
    job.prepare()
    job.terraform().init()

    def held() -> list[Any]:
        items = dynamodb.scan(TableName=table)["Items"]
        return [i for i in items if "Info" in i]

    return job, cid, held


def test_a_state_lock_left_by_an_ended_run_is_released_one_of_a_live_run_is_not(
    aws: str, settings: Any, monkeypatch: pytest.MonkeyPatch, prefect_server: str
) -> None:
    """A run SIGKILLed mid-apply leaves its DynamoDB lock. The next run of the client
    releases it only when the run recorded as the previous holder has ended in Prefect."""
    import os
    import signal
    import subprocess

    from prefect import flow
    from prefect.client.orchestration import get_client

    from flows.tasks import unlocking

    job, _cid, held = _s3_job(aws, settings)
    monkeypatch.setenv("LOCALCLOUD_CREATE_DELAY_SECONDS", "60")
    tf = job.terraform()
    dying = subprocess.Popen(
        tf._argv("apply", ["-auto-approve", "-input=false", "-lock-timeout=0s"]),
        env=tf.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while not held() and time.monotonic() < deadline:
        time.sleep(0.3)
    assert held(), "the apply took the state lock"
    os.killpg(dying.pid, signal.SIGKILL)
    dying.wait(timeout=10)
    monkeypatch.delenv("LOCALCLOUD_CREATE_DELAY_SECONDS")
    assert held(), "a killed Terraform leaves its lock in DynamoDB"

    @flow(name="lock-holder")
    def holder() -> None:
        pass

    @flow(name="next-run")
    def next_run() -> Any:
        return unlocking(job, lambda terraform: terraform.apply())

    with get_client(sync_client=True) as client:
        live = client.create_flow_run(holder)  # scheduled, never ended
    job.previous_holder = str(live.id)
    refused = next_run(return_state=True)
    assert refused.is_failed() and held(), "a live holder's lock is never released"

    ended = holder(return_state=True)
    job.previous_holder = str(ended.state_details.flow_run_id)
    done = next_run(return_state=True)
    assert done.is_completed(), done.message
    assert done.result().change_summary.add == 1
    assert not held(), "released, and the apply's own lock is gone too"
    job.terraform().destroy()
