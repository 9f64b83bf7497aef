"""What a service refuses with, turned into a status code by ``api.main``: ``NotFound``
404, ``Conflict`` (and the registry's ``InvalidTransition``) 409, ``InvalidInput`` 422."""

from __future__ import annotations

from typing import Any


class NotFound(Exception):
    pass


class Conflict(Exception):
    pass


class InvalidInput(Exception):
    """Inputs a target rejects; ``errors`` are shaped like FastAPI's 422 ``detail``."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))
        self.errors = errors
