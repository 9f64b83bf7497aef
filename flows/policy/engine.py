"""Loading and evaluating Rego policies with regorus (``gordon-to-regorus`` on PyPI: a
Rust Rego interpreter with Python bindings, in-process, no network).

A *policy* is a Rego package (Rego v1 syntax) with a ``deny`` and/or ``warn`` rule, each
a set of messages, as conftest reads them. It declares its level with
``enforcement := "advisory" | "soft-mandatory" | "hard-mandatory"`` (soft-mandatory when
it does not); a data file may set another level for it under
``tenantform.levels["<package>"]``. Its tests are ``test_*`` rules, true when they pass,
as ``opa test`` runs them. Policies read ``input`` (``plan_document``) and ``data`` (the
JSON files beside them, merged: the built-ins' ``data.json`` first, then the operator's).

Everything is read afresh on every load: a policy changed on disk is used by the next run.
A policy that does not parse or that errors while evaluating fails closed: ``PolicyError``
names its file, line and column.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flows.contract import PolicyLevel, PolicyOutcome, PolicyResult

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"
"""The policies the project ships (and their ``data.json`` of parameters)."""

_PROJECT = BUILTIN_DIR.parents[2]
_PACKAGE = re.compile(r"^package\s+([A-Za-z_][\w.]*)", re.MULTILINE)
_RULE = re.compile(r"^(deny|warn)\b", re.MULTILINE)
_TEST = re.compile(r"^(test_\w+)\b", re.MULTILINE)
_WHERE = re.compile(r"-->\s*(?P<file>.+?):(?P<line>\d+):(?P<col>\d+)")
_ERROR = re.compile(r"^error:\s*(?P<text>.+)$", re.MULTILINE)
SENSITIVE = "(sensitive)"


class PolicyError(Exception):
    """A policy set that cannot be loaded or evaluated: the run fails closed."""


class PolicyDenied(Exception):
    """A plan some blocking policy denies: nothing is applied."""

    def __init__(self, results: Sequence[PolicyResult]) -> None:
        self.results = list(results)
        blocking = denied(self.results)
        super().__init__(
            "; ".join(
                f"denied by policy {r.policy} ({r.level.value}): {' / '.join(r.messages)}" for r in blocking
            )
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (PolicyDenied, (self.results,))


def denied(results: Iterable[PolicyResult]) -> list[PolicyResult]:
    return [r for r in results if r.outcome is PolicyOutcome.deny]


@dataclass(frozen=True)
class PolicyTestResult:
    package: str
    name: str
    file: str
    passed: bool
    error: str = ""


@dataclass
class _Source:
    name: str
    text: str
    package: str


@dataclass
class PolicySet:
    """The ``.rego`` files and data of some directories, read once (``load``)."""

    sources: list[_Source] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, directories: Iterable[Path]) -> PolicySet:
        loaded = cls()
        for directory in directories:
            if not directory.is_dir():
                raise PolicyError(f"policy directory {directory} does not exist")
            for path in sorted(directory.rglob("*.rego")):
                text = path.read_text()
                match = _PACKAGE.search(text)
                name = _shown(path)
                if match is None:
                    raise PolicyError(f"{name}:1:1: no package declaration")
                loaded.sources.append(_Source(name, text, match.group(1)))
            for path in sorted(directory.rglob("*.json")):
                try:
                    _merge(loaded.data, json.loads(path.read_text()))
                except (ValueError, TypeError) as exc:
                    raise PolicyError(f"{_shown(path)}: not a JSON object of policy data: {exc}") from None
        return loaded

    @property
    def policies(self) -> dict[str, str]:
        """Package → the file that holds its deny/warn rules."""
        found: dict[str, str] = {}
        for source in self.sources:
            if _RULE.search(source.text):
                found.setdefault(source.package, source.name)
        return found

    def engine(self) -> Any:
        import regorus

        engine = regorus.Engine()
        engine.add_data_json(json.dumps(self.data))
        for source in self.sources:
            try:
                engine.add_policy(source.name, source.text)
            except RuntimeError as exc:
                raise PolicyError(_clean(exc, source.name)) from None
        return engine

    def evaluate(self, document: Mapping[str, Any], overridable: Collection[str] = ()) -> list[PolicyResult]:
        """Every policy on ``document``; a soft-mandatory denial of a policy named in
        ``overridable`` is ``overridden``."""
        engine = self.engine()
        engine.set_input_json(json.dumps(document))
        levels = self.data.get("tenantform", {}).get("levels", {})
        results = []
        for package, file in self.policies.items():
            deny = _messages(_query(engine, f"data.{package}.deny", file), file, "deny")
            warn = _messages(_query(engine, f"data.{package}.warn", file), file, "warn")
            declared = levels.get(package) or _query(engine, f"data.{package}.enforcement", file)
            try:
                level = PolicyLevel(declared or PolicyLevel.soft_mandatory)
            except ValueError:
                known = ", ".join(v.value for v in PolicyLevel)
                raise PolicyError(
                    f"{file}: enforcement {declared!r} of {package} is not one of {known}"
                ) from None
            if deny and level is PolicyLevel.advisory:
                outcome = PolicyOutcome.warn
            elif deny and level is PolicyLevel.soft_mandatory and package in overridable:
                outcome = PolicyOutcome.overridden
            elif deny:
                outcome = PolicyOutcome.deny
            else:
                outcome = PolicyOutcome.warn if warn else PolicyOutcome.passed
            results.append(
                PolicyResult(policy=package, level=level, outcome=outcome, messages=deny + warn, file=file)
            )
        return results

    def run_tests(self) -> list[PolicyTestResult]:
        """Each ``test_*`` rule, as ``opa test`` runs it: it passes when it is true."""
        engine = self.engine()
        outcomes = []
        for source in self.sources:
            for name in dict.fromkeys(_TEST.findall(source.text)):
                try:
                    value = _query(engine, f"data.{source.package}.{name}", source.name)
                except PolicyError as exc:
                    outcomes.append(PolicyTestResult(source.package, name, source.name, False, str(exc)))
                    continue
                outcomes.append(PolicyTestResult(source.package, name, source.name, value is True))
        return outcomes


def plan_document(
    plan: Mapping[str, Any],
    *,
    client_id: str,
    target: str,
    inputs: Mapping[str, Any],
    labels: Mapping[str, str],
    operation: str,
    hidden_variables: Collection[str] = (),
) -> dict[str, Any]:
    """``input`` of every policy: the plan (``terraform show -json``) with the values
    Terraform marks sensitive replaced by ``"(sensitive)"`` and the secret variables left
    out, the client (id, target, inputs, labels) and the operation (provision, plan, heal)."""
    shown = dict(plan)
    shown["resource_changes"] = [_masked_change(c) for c in plan.get("resource_changes", [])]
    shown["output_changes"] = {k: _masked_change_body(v) for k, v in plan.get("output_changes", {}).items()}
    for key in ("planned_values", "prior_state"):
        if isinstance(plan.get(key), dict):
            shown[key] = _masked_values(plan[key])
    shown["variables"] = {k: v for k, v in plan.get("variables", {}).items() if k not in hidden_variables}
    return {
        "plan": shown,
        "client": {"id": client_id, "target": target, "inputs": dict(inputs), "labels": dict(labels)},
        "operation": operation,
    }


# Plumbing ------------------------------------------------------------------------------------


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(_PROJECT))
    except ValueError:
        return str(path)


def _merge(into: dict[str, Any], other: Any) -> None:
    if not isinstance(other, dict):
        raise TypeError(f"a {type(other).__name__}, not an object")
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _clean(exc: BaseException, fallback: str) -> str:
    """regorus says ``--> file:line:col``, the source line, ``error: ...`` and a backtrace."""
    text = str(exc).split("Stack backtrace:")[0]
    where, error = _WHERE.search(text), _ERROR.search(text)
    detail = error.group("text").strip() if error else " ".join(text.split())
    if where is None:
        return f"{fallback}: {detail}"
    return f"{where['file']}:{where['line']}:{where['col']}: {detail}"


def _query(engine: Any, query: str, file: str) -> Any:
    try:
        answer = engine.eval_query(query)
    except RuntimeError as exc:
        raise PolicyError(_clean(exc, file)) from None
    results = answer.get("result") or []
    if not results:
        return None
    return results[0]["expressions"][0]["value"]


def _messages(value: Any, file: str, rule: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, (set, list, frozenset)):
        raise PolicyError(f"{file}: {rule} must be a set of messages, not {type(value).__name__}")
    return sorted(v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str) for v in value)


def _mask(value: Any, marks: Any) -> Any:
    if marks is True:
        return SENSITIVE
    if isinstance(value, dict) and isinstance(marks, dict):
        return {k: _mask(v, marks.get(k, False)) for k, v in value.items()}
    if isinstance(value, list) and isinstance(marks, list):
        return [_mask(v, marks[i] if i < len(marks) else False) for i, v in enumerate(value)]
    return value


def _masked_change_body(change: Mapping[str, Any]) -> dict[str, Any]:
    body = dict(change)
    body["before"] = _mask(change.get("before"), change.get("before_sensitive", False))
    body["after"] = _mask(change.get("after"), change.get("after_sensitive", False))
    return body


def _masked_change(resource: Mapping[str, Any]) -> dict[str, Any]:
    shown = dict(resource)
    shown["change"] = _masked_change_body(resource.get("change", {}))
    return shown


def _masked_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """``planned_values`` / ``prior_state``: modules of resources with ``sensitive_values``."""
    shown = dict(values)
    if isinstance(values.get("root_module"), dict):
        shown["root_module"] = _masked_module(values["root_module"])
    if isinstance(values.get("values"), dict) and isinstance(values["values"].get("root_module"), dict):
        shown["values"] = {**values["values"], "root_module": _masked_module(values["values"]["root_module"])}
    if isinstance(values.get("outputs"), dict):
        shown["outputs"] = {
            k: {**o, "value": SENSITIVE} if o.get("sensitive") else o for k, o in values["outputs"].items()
        }
    return shown


def _masked_module(module: Mapping[str, Any]) -> dict[str, Any]:
    shown = dict(module)
    shown["resources"] = [
        {**r, "values": _mask(r.get("values"), r.get("sensitive_values", False))}
        for r in module.get("resources", [])
    ]
    shown["child_modules"] = [_masked_module(m) for m in module.get("child_modules", [])]
    return shown
