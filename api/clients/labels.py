"""Client labels (``ring: canary``, ``region: eu``): their rules, and the ``label`` selectors
GET /api/clients narrows by. Set at creation and by PATCH; rollouts choose waves by them."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import Field, StringConstraints, TypeAdapter, ValidationError

from api.errors import InvalidInput

KEY_PATTERN = r"^[a-z0-9]([a-z0-9._/-]{0,62})$"
VALUE_PATTERN = r"^[A-Za-z0-9._-]{0,63}$"
MAX_LABELS = 32

LabelKey = Annotated[str, StringConstraints(pattern=KEY_PATTERN)]
LabelValue = Annotated[str, StringConstraints(pattern=VALUE_PATTERN)]
Labels = Annotated[
    dict[LabelKey, LabelValue],
    Field(
        max_length=MAX_LABELS,
        description="Key/value labels (at most 32): a key is 1-63 of a-z 0-9 . _ / - starting with a "
        "letter or digit; a value up to 63 of A-Z a-z 0-9 . _ -.",
        examples=[{"ring": "canary", "region": "eu"}],
    ),
]
_LABELS: TypeAdapter[dict[str, str]] = TypeAdapter(Labels)


def validated(labels: Any, field: str = "labels") -> dict[str, str]:
    """The labels, or a 422 naming ``body.<field>`` and the bad key."""
    try:
        return _LABELS.validate_python(labels)
    except ValidationError as exc:
        raise InvalidInput(
            [{"loc": ["body", field, *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        ) from None


def selectors(values: list[str]) -> list[tuple[str, str | None]]:
    """``key=value`` (that value) or ``key`` (the key set at all), each a 422 naming ``label``
    when malformed."""
    parsed: list[tuple[str, str | None]] = []
    for raw in values:
        key, equals, value = raw.partition("=")
        if not re.match(KEY_PATTERN, key) or (equals and not re.match(VALUE_PATTERN, value)):
            raise InvalidInput(
                [
                    {
                        "loc": ["query", "label"],
                        "msg": f"{raw!r} is not key=value or key (a key is a-z 0-9 . _ / -, "
                        "a value A-Z a-z 0-9 . _ -)",
                        "type": "value_error",
                        "input": raw,
                    }
                ]
            )
        parsed.append((key, value if equals else None))
    return parsed
