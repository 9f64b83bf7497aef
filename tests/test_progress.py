"""Live progress: resources done of planned counted from real Terraform 1.0.3 output, kept
in a Prefect progress artifact (real server), shown by ``GET /api/runs/{run_id}`` and
streamed with the run's task states and log lines by ``GET /api/runs/{run_id}/events``
while the session worker applies a slow localcloud create."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flows.contract import describe_progress, progress_key, read_progress
from flows.terraform.backends import local_backend
from flows.terraform.binary import find_binary
from flows.terraform.events import ApplyProgress, EventStream, parse_stream
from flows.terraform.runner import Terraform
from flows.terraform.workspace import Workspace
from tests.support import wait_until

# --- counting, from real Terraform output ------------------------------------------------


def parse_progress(lines: list[str]) -> ApplyProgress:
    stream = EventStream("apply")
    for line in lines:
        stream.feed(line)
    return stream.applying.progress


def _terraform(settings: Any, prefix: str, count: int, seen: list[ApplyProgress]) -> Terraform:
    ws = Workspace(settings.root, "c-progress")
    variables = {"client_id": "c", "instance_name_prefix": prefix, "instance_count": count}
    ws.prepare("local", variables, local_backend(settings, "c-progress"))
    return Terraform(find_binary(None), ws, ws.environment(), progress=seen.append)


def test_apply_progress_counts_resources_done_of_planned(settings: Any) -> None:
    seen: list[ApplyProgress] = []
    tf = _terraform(settings, "web", 2, seen)
    tf.init()
    tf.apply()
    assert seen, "the runner never reported progress"
    assert {p.command for p in seen} == {"apply"}
    assert {p.planned for p in seen} == {2}, "every change is planned before the first apply_start"
    assert seen[0].done == 0 and seen[-1].done == 2
    dones = [p.done for p in seen]
    assert dones == sorted(dones)
    assert seen[-1].percent == 100.0

    # The runner's own log of that apply, parsed again, counts the same.
    recorded = (tf.workspace.path / "apply.log").read_text().splitlines()[1:]
    result = parse_stream("apply", recorded)
    assert result.change_summary is not None and result.change_summary.add == 2
    assert parse_progress(recorded) == ApplyProgress(command="apply", planned=2, done=2)

    # Renaming replaces both (a delete and a create each) and adds a third: 3 resources, not 5.
    replaced: list[ApplyProgress] = []
    tf = _terraform(settings, "web-renamed", 3, replaced)
    tf.apply()
    assert replaced[-1] == ApplyProgress(command="apply", planned=3, done=3)
    assert all(p.done <= p.planned for p in replaced)

    destroyed: list[ApplyProgress] = []
    _terraform(settings, "web-renamed", 3, destroyed).destroy()
    assert destroyed[-1] == ApplyProgress(command="destroy", planned=3, done=3)


def test_a_command_that_changes_nothing_reports_no_progress(settings: Any) -> None:
    seen: list[ApplyProgress] = []
    tf = _terraform(settings, "same", 1, seen)
    tf.init()
    tf.apply()
    seen.clear()
    tf.apply()
    assert seen == []


def test_progress_description_round_trips() -> None:
    progress = ApplyProgress(command="destroy", planned=7, done=3)
    assert describe_progress(progress) == "terraform destroy: 3 of 7 resources done"
    assert read_progress(describe_progress(progress)) == progress
    assert read_progress("something else") is None and read_progress(None) is None
    assert progress_key("ABC-1") == "progress-abc-1"


# --- the artifact, on a real Prefect server -----------------------------------------------


@pytest.mark.usefixtures("prefect_server")
def test_progress_artifact_is_throttled_and_ends_on_the_last_count() -> None:
    import asyncio

    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.progress import ProgressArtifact

    now = [0.0]
    client_id = str(uuid.uuid4())

    @flow
    def applying() -> None:
        with ProgressArtifact(client_id, interval=5.0, clock=lambda: now[0]) as artifact:
            for done in range(10):  # a burst of lines: one write, the first
                artifact(ApplyProgress(command="apply", planned=10, done=done))
            assert artifact.writes == 1
            now[0] = 5.0
            artifact(ApplyProgress(command="apply", planned=10, done=9))
            assert artifact.writes == 2
            artifact(ApplyProgress(command="apply", planned=10, done=10))
            assert artifact.writes == 2, "held back until the interval has passed"
        assert artifact.writes == 3, "the last count is written when the command ends"

    state = applying(return_state=True)
    assert state.is_completed(), state.message

    async def latest() -> Any:
        async with get_client() as client:
            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[progress_key(client_id)]))
            )
        return found

    artifacts = asyncio.run(latest())
    assert len(artifacts) == 1 and artifacts[0].type == "progress"
    assert artifacts[0].flow_run_id == state.state_details.flow_run_id
    assert artifacts[0].data == 100.0
    assert read_progress(artifacts[0].description) == ApplyProgress(command="apply", planned=10, done=10)


# --- through the gateway, with the session worker -----------------------------------------


def sse_events(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The text/event-stream format: ``event:``/``data:`` fields, a blank line ends one."""
    name, data = "message", ""
    for line in lines:
        if not line:
            if data:
                yield name, json.loads(data)
            name, data = "message", ""
        elif line.startswith("event:"):
            name = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data += line.removeprefix("data:").strip()


class Follower(threading.Thread):
    """Reads the run's event stream as it comes, in the background."""

    def __init__(self, gateway: Any, request_id: str) -> None:
        super().__init__(daemon=True)
        self.gateway, self.request_id = gateway, request_id
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.status_code = 0
        self.content_type = ""

    def run(self) -> None:
        with self.gateway.stream("GET", f"/api/runs/{self.request_id}/events") as response:
            self.status_code = response.status_code
            self.content_type = response.headers["content-type"]
            for event in sse_events(response.iter_lines()):
                self.events.append(event)

    def names(self) -> list[str]:
        return [name for name, _ in self.events]


@pytest.mark.usefixtures("worker")
def test_a_slow_apply_shows_progress_and_streams_until_it_ends(gateway: Any) -> None:
    # Each create of a paced-* instance sleeps in the worker's localcloud: long enough to
    # watch the run midway, far shorter than the crash tests' slow-* instances.
    faults = Path(os.environ["TENANTFORM_DATA_DIR"]) / "localcloud" / "_faults"
    faults.mkdir(parents=True, exist_ok=True)
    (faults / "delay-paced-").write_text("40")
    body = {"cloud_provider": "local", "instance_name_prefix": "paced-progress", "count": 2}
    request_id = gateway.post("/provision", json=body).json()["request_id"]
    follower = Follower(gateway, request_id)
    follower.start()

    # While the instances are being created.
    midway: dict[str, Any] = {}
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline and not midway:
        run = gateway.get(f"/api/runs/{request_id}").json()
        if run["progress"] is not None:
            midway = run
        elif run["status"] not in ("accepted", "in_progress"):
            pytest.fail(f"the run ended before it showed progress: {run}")
        time.sleep(0.5)
    assert midway, "GET /api/runs never showed progress"
    assert midway["status"] == "in_progress"
    assert midway["progress"]["command"] == "apply" and midway["progress"]["planned"] == 2
    assert midway["progress"]["done"] < 2

    def applying() -> bool:
        return "progress" in follower.names() and any(
            name == "task" and data["name"].startswith("terraform-apply") and data["state"] == "Running"
            for name, data in follower.events
        )

    wait_until(applying, 30, "the stream to say terraform-apply runs and how far it is")
    assert "end" not in follower.names(), "the stream is live: the run has not ended yet"
    assert gateway.get(f"/api/runs/{request_id}").json()["status"] == "in_progress"

    follower.join(timeout=300)
    assert not follower.is_alive(), "the stream did not end with the run"
    assert follower.status_code == 200 and follower.content_type.startswith("text/event-stream")
    names = follower.names()
    assert names[-1] == "end" and names.count("end") == 1
    end = follower.events[-1][1]
    assert end["request_id"] == request_id and end["status"] == "completed", end
    assert end["message"] == "Instance provisioning completed successfully"

    tasks = [data for name, data in follower.events if name == "task"]
    finished = {t["name"].rsplit("-", 1)[0] for t in tasks if t["state"] == "Completed"}
    assert {"prepare-vars", "terraform-init", "terraform-apply", "read-outputs"} <= finished
    assert len({(t["name"], t["state"]) for t in tasks}) == len(tasks), "each task state is sent once"
    logs = [data for name, data in follower.events if name == "log"]
    assert any("Creating..." in line["message"] for line in logs)
    assert any("Apply complete!" in line["message"] for line in logs)
    streamed = [f"{line['timestamp']} {line['message']}" for line in logs]
    assert len(set(streamed)) == len(streamed), "each log line is sent once"
    read = gateway.get(f"/api/runs/{request_id}", params={"logs": "true"}).json()["logs"]
    assert {line.replace("+00:00", "Z") for line in streamed} <= {
        line.replace("+00:00", "Z") for line in read
    }
    assert [data["status"] for name, data in follower.events if name == "status"][-1] == "completed"
    progress = [data for name, data in follower.events if name == "progress"]
    assert progress[0]["done"] < 2 and progress[-1] == {
        "command": "apply",
        "planned": 2,
        "done": 2,
        "percent": 100.0,
    }

    done = gateway.get(f"/api/runs/{request_id}").json()
    assert done["progress"] == progress[-1]

    # An ended run: its history at once, then the end.
    again = gateway.get(f"/api/runs/{request_id}/events")
    replay = list(sse_events(iter(again.text.splitlines())))
    assert replay[-1] == ("end", end)
    replayed = [data for name, data in replay if name == "log"]
    assert all(line in replayed for line in logs)


def test_events_of_an_unknown_run_are_a_404(gateway: Any) -> None:
    answer = gateway.get(f"/api/runs/{uuid.uuid4()}/events")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["detail"]


def test_events_need_a_key(gateway: Any) -> None:
    answer = gateway.get(f"/api/runs/{uuid.uuid4()}/events", headers={"X-API-Key": "wrong"})
    assert answer.status_code == 401
