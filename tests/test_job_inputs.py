"""A run whose inputs or target cannot make a job ends with a reason naming what to fix,
before Terraform or any lock (outside a task, where Prefect would only say the type)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from flows.jobs import Job, JobNotReady


def test_inputs_that_no_longer_validate_name_the_field(settings: Any) -> None:
    client_id = str(uuid.uuid4())
    inputs = {"cloud_provider": "local", "provider_config": {}, "instance_name_prefix": "ok", "count": 999}
    with pytest.raises(JobNotReady) as raised:
        Job.create(settings, client_id, "local", inputs)
    assert "count" in str(raised.value) and client_id in str(raised.value)
    assert "PATCH /api/clients" in str(raised.value)


def test_an_unknown_target_says_so(settings: Any) -> None:
    with pytest.raises(JobNotReady, match="no-such-target"):
        Job.create(settings, str(uuid.uuid4()), "no-such-target", {})
