"""The reference pages the docs site generates from the code when it is built, so they
cannot drift from it: the HTTP API from the gateway's OpenAPI document, the settings from
the pydantic-settings models, the ``tenantform`` CLI from its typer app, and the target
catalogue.

A page asks for a section with a marker line of its own, ``<!-- docsgen:api -->``
(``api``, ``settings``, ``cli``, ``targets``); ``on_page_markdown`` is the mkdocs hook
(``mkdocs.yml``: ``hooks: [docs/hooks.py]``, which re-exports it) that replaces the
marker when the site is built. Nothing generated is committed. An unknown marker fails the
build."""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

import typer
import typer.core
from pydantic import AliasChoices, BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

from flows.settings import Settings

if TYPE_CHECKING:
    from mkdocs.config.defaults import MkDocsConfig
    from mkdocs.structure.files import Files
    from mkdocs.structure.pages import Page

SETTINGS_MODELS: tuple[type[BaseSettings], ...] = (Settings,)
"""Every settings model, in the order the settings page shows them: the one place to
change when models are added, split or merged."""

MARKER = re.compile(r"^<!-- docsgen:([a-z-]+) -->$", re.M)
_CODE_SPAN = re.compile(r"(`+).*?(?<!`)\1(?!`)")


def _outside_code(text: str, change: Callable[[str], str]) -> str:
    """``text`` with ``change`` applied to everything but its code spans."""
    out, at = [], 0
    for span in _CODE_SPAN.finditer(text):
        out += [change(text[at : span.start()]), span.group(0)]
        at = span.end()
    return "".join([*out, change(text[at:])])


# Markdown helpers ----------------------------------------------------------------------------
def _text(text: object) -> str:
    """Prose from the code (descriptions, docstrings) as markdown: ``<``, ``>`` and ``*``
    outside code spans escaped, so ``<data dir>`` is text, not an HTML tag, and ``NOTIFY_*``
    starts no emphasis."""
    return _outside_code(str(text), lambda p: p.replace("<", "&lt;").replace(">", "&gt;").replace("*", "\\*"))


def _cell(text: object) -> str:
    """One table cell: one line, pipes outside code spans escaped (Python-Markdown's tables
    leave those inside alone)."""
    return _outside_code(" ".join(str(text).split()), lambda p: p.replace("|", "\\|"))


def _code(text: object) -> str:
    body = str(text)
    fence = "``" if "`" in body else "`"
    pad = " " if body.startswith("`") or body.endswith("`") else ""
    return f"{fence}{pad}{body}{pad}{fence}"


def _table(header: tuple[str, ...], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def _paragraphs(text: str | None) -> str:
    """A docstring as markdown paragraphs (its indentation removed)."""
    return _text(inspect.cleandoc(text or "").strip())


# JSON schema types (the OpenAPI document and the targets' input models) -------------------
def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def schema_type(schema: Mapping[str, Any], link: Callable[[str], str] = _code) -> str:
    """A JSON schema's type in a few words: ``string (uuid)``, ``array of X``, ``A or B``."""
    if "$ref" in schema:
        return link(_ref_name(schema["$ref"]))
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            parts = [schema_type(s, link) for s in schema[key] if s.get("type") != "null"]
            return " or ".join(dict.fromkeys(parts)) or "null"
    if "const" in schema:
        return _code(schema["const"])
    if "enum" in schema:
        return "one of " + ", ".join(_code(v) for v in schema["enum"])
    kind = schema.get("type")
    if kind == "array":
        return "array of " + schema_type(schema.get("items", {}), link)
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return "object of " + schema_type(schema["additionalProperties"], link)
    if isinstance(kind, list):
        return " or ".join(str(k) for k in kind if k != "null")
    if kind is None:
        return "any"
    return f"{kind} ({schema['format']})" if "format" in schema else str(kind)


_LIMITS = (
    ("minimum", "≥ {}"),
    ("exclusiveMinimum", "> {}"),
    ("maximum", "≤ {}"),
    ("exclusiveMaximum", "< {}"),
    ("minLength", "length ≥ {}"),
    ("maxLength", "length ≤ {}"),
    ("minItems", "items ≥ {}"),
    ("maxItems", "items ≤ {}"),
)


def schema_limits(schema: Mapping[str, Any]) -> str:
    """The constraints a JSON schema (or its non-null branch) sets, as words."""
    for key in ("anyOf", "oneOf"):
        branches = [s for s in schema.get(key, ()) if s.get("type") != "null"]
        if len(branches) == 1:
            return schema_limits({**branches[0], **{k: v for k, v in schema.items() if k != key}})
    found = [text.format(schema[key]) for key, text in _LIMITS if key in schema]
    if "pattern" in schema:
        found.append("pattern " + _code(schema["pattern"]))
    return ", ".join(found)


# The HTTP API -------------------------------------------------------------------------------
def openapi_document() -> dict[str, Any]:
    """The gateway's own document, as ``/openapi.json`` serves it (no server started)."""
    from api.main import create_app

    return create_app().openapi()


def _schema_anchor(name: str) -> str:
    return "schema-" + re.sub(r"[^A-Za-z0-9_-]", "-", name)


def _schema_link(name: str) -> str:
    return f"[`{name}`](#{_schema_anchor(name)})"


def _media_schema(content: Mapping[str, Any]) -> tuple[str, str]:
    """(media type, schema in words) of a request or response body."""
    for media, body in content.items():
        schema = body.get("schema", {})
        words = schema_type(schema, _schema_link)
        if "propertyName" in schema.get("discriminator", {}):
            words += f", chosen by `{schema['discriminator']['propertyName']}`"
        return media, words
    return "", ""


def _security(operation: Mapping[str, Any], schemes: Mapping[str, Any]) -> str:
    needs = [name for entry in operation.get("security", []) for name in entry]
    if not needs:
        return "none"
    words = []
    for name in needs:
        scheme = schemes.get(name, {})
        if scheme.get("type") == "apiKey":
            words.append(f"`{scheme.get('name', name)}` header")
        elif scheme.get("scheme") == "basic":
            words.append("HTTP Basic")
        else:
            words.append(name)
    return " or ".join(words)


METHODS = ("get", "put", "post", "patch", "delete", "head", "options")


def api_markdown(document: Mapping[str, Any] | None = None) -> str:
    """Every path and method: summary, description, auth, parameters, request body,
    answers; then the schemas they name."""
    document = document if document is not None else openapi_document()
    schemes = document.get("components", {}).get("securitySchemes", {})
    schemas: Mapping[str, Any] = document.get("components", {}).get("schemas", {})
    info = document.get("info", {})
    out = [
        f"The gateway's OpenAPI document: {_code(info.get('title', ''))} version "
        f"{_code(info.get('version', ''))}, OpenAPI {document.get('openapi', '')}.",
        "",
    ]

    by_tag: dict[str, list[tuple[str, str, Mapping[str, Any]]]] = {}
    for path, item in document.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                operation = item[method]
                tag = (operation.get("tags") or ["other"])[0]
                by_tag.setdefault(tag, []).append((path, method, operation))

    out += ["| Method | Path | Summary |", "|---|---|---|"]
    for operations in by_tag.values():
        for path, method, operation in operations:
            out.append(f"| {method.upper()} | `{path}` | {_cell(operation.get('summary', ''))} |")
    out.append("")

    for tag, operations in by_tag.items():
        out += [f"## {tag.capitalize()}", ""]
        for path, method, operation in operations:
            out += [f"### {method.upper()} `{path}`", ""]
            if operation.get("summary"):
                out += [f"**{_text(operation['summary'])}**", ""]
            if operation.get("description"):
                out += [_paragraphs(operation["description"]), ""]
            out += [f"Authentication: {_security(operation, schemes)}.", ""]
            parameters = operation.get("parameters", [])
            if parameters:
                out += _table(
                    ("Parameter", "In", "Type", "Required", "Description"),
                    [
                        (
                            _code(p["name"]),
                            p.get("in", ""),
                            schema_type(p.get("schema", {}), _schema_link)
                            + (f" ({limits})" if (limits := schema_limits(p.get("schema", {}))) else ""),
                            "yes" if p.get("required") else "no",
                            _text(p.get("description", ""))
                            + (
                                f" Default: {_code(p['schema']['default'])}."
                                if "default" in p.get("schema", {})
                                else ""
                            ),
                        )
                        for p in parameters
                    ],
                )
            body = operation.get("requestBody")
            if body:
                media, kind = _media_schema(body.get("content", {}))
                needed = "required" if body.get("required") else "optional"
                out += [f"Request body ({needed}, `{media}`): {kind}.", ""]
            responses = operation.get("responses", {})
            out += _table(
                ("Code", "Meaning", "Body"),
                [
                    (code, _text(answer.get("description", "")), _media_schema(answer.get("content", {}))[1])
                    for code, answer in sorted(responses.items())
                ],
            )

    out += ["## Schemas", "", "The bodies the operations above name.", ""]
    for name, schema in sorted(schemas.items()):
        out += [f"### {name} {{ #{_schema_anchor(name)} }}", ""]
        if schema.get("description"):
            out += [_paragraphs(schema["description"]), ""]
        properties: Mapping[str, Any] = schema.get("properties", {})
        required = set(schema.get("required", ()))
        if properties:
            out += _table(
                ("Field", "Type", "Required", "Description"),
                [
                    (
                        _code(field),
                        schema_type(prop, _schema_link)
                        + (f" ({limits})" if (limits := schema_limits(prop)) else ""),
                        "yes" if field in required else "no",
                        _text(prop.get("description", "")),
                    )
                    for field, prop in properties.items()
                ],
            )
        elif "enum" in schema or "oneOf" in schema or "anyOf" in schema:
            out += [schema_type(schema, _schema_link) + ".", ""]
    return "\n".join(out)


# Settings -----------------------------------------------------------------------------------
def env_name(model: type[BaseSettings], name: str, field: FieldInfo) -> str:
    """The environment variable a field is read from."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        alias = next((c for c in alias.choices if isinstance(c, str)), None)
    if isinstance(alias, str):
        return alias.upper()
    if field.alias:
        return field.alias.upper()
    prefix = str(model.model_config.get("env_prefix", "") or "")
    return (prefix + name).upper()


def type_words(annotation: Any) -> str:
    """A field's type for a person setting a variable: ``int``, ``path``, ``secret``,
    ``one of `json`, `text```; ``None`` in a union is left out (the default says unset)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        parts = [type_words(a) for a in typing.get_args(annotation) if a is not type(None)]
        return " or ".join(parts)
    if origin is typing.Literal:
        return "one of " + ", ".join(_code(v) for v in typing.get_args(annotation))
    if origin is typing.Annotated:
        return type_words(typing.get_args(annotation)[0])
    if annotation is SecretStr:
        return "secret"
    if isinstance(annotation, type):
        return {"Path": "path", "PosixPath": "path"}.get(annotation.__name__, annotation.__name__)
    return str(annotation)


def default_words(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    default = field.get_default(call_default_factory=True)
    if default is None or default is PydanticUndefined:
        return "unset"
    if isinstance(default, bool):
        return _code(str(default).lower())
    if isinstance(default, SecretStr):
        return "(secret)"
    return _code(default)


def field_limits(field: FieldInfo) -> str:
    words = []
    for item in field.metadata:
        for attr, text in (("ge", "≥ {}"), ("gt", "> {}"), ("le", "≤ {}"), ("lt", "< {}")):
            value = getattr(item, attr, None)
            if value is not None:
                words.append(text.format(value))
    return ", ".join(words)


def settings_rows(model: type[BaseSettings]) -> list[tuple[str, str, str, str]]:
    """(variable, type, default, description) per field of a model."""
    rows = []
    for name, field in model.model_fields.items():
        kind = type_words(field.annotation)
        if limits := field_limits(field):
            kind += f" ({limits})"
        rows.append(
            (env_name(model, name, field), kind, default_words(field), _text(field.description or ""))
        )
    return rows


def settings_markdown(models: tuple[type[BaseSettings], ...] = SETTINGS_MODELS) -> str:
    out = []
    for model in models:
        out += [f"## `{model.__module__}.{model.__name__}`", ""]
        module = inspect.getmodule(model)
        about = model.__doc__ or (module.__doc__ if module else None)
        if about:
            out += [_paragraphs(about).split("\n\n")[0], ""]
        out += _table(
            ("Variable", "Type", "Default", "Description"),
            [(_code(env), kind, default, text) for env, kind, default, text in settings_rows(model)],
        )
    return "\n".join(out)


# The CLI ------------------------------------------------------------------------------------
def _commands(command: Any, ctx: Any, path: str) -> Iterator[tuple[str, Any, Any]]:
    """(full name, command, its context) of a command and every command below it."""
    yield path, command, ctx
    if isinstance(command, typer.core.TyperGroup):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            sub_ctx = sub.context_class(sub, info_name=name, parent=ctx)
            yield from _commands(sub, sub_ctx, f"{path} {name}")


def cli_markdown(app: typer.Typer | None = None, name: str = "tenantform") -> str:
    """Every command of the typer app through typer's own click command: usage, help,
    arguments and options (with their defaults and environment variables)."""
    if app is None:
        from deployments.cli import app as cli_app

        app = cli_app
    root = typer.main.get_command(app)
    out: list[str] = []
    for path, command, ctx in _commands(root, root.context_class(root, info_name=name), name):
        level = "#" * min(2 + path.count(" "), 4)
        out += [f"{level} `{path}`", ""]
        out += ["```text", command.get_usage(ctx).strip(), "```", ""]
        if command.help:
            out += [_paragraphs(command.help), ""]
        rows = []
        for param in command.params:
            record = param.get_help_record(ctx)
            if record is not None:
                rows.append((_code(record[0]), _text(record[1])))
        if rows:
            out += _table(("Argument or option", "Help"), rows)
        if isinstance(command, typer.core.TyperGroup):
            listed = [
                (_code(sub), (command.get_command(ctx, sub).get_short_help_str(limit=120)))  # type: ignore[union-attr]
                for sub in command.list_commands(ctx)
            ]
            out += _table(("Command", "What"), listed)
    return "\n".join(out)


# The target catalogue -----------------------------------------------------------------------
def _first_line(obj: object) -> str:
    return _paragraphs(getattr(obj, "__doc__", None) or "").split("\n\n")[0].replace("\n", " ")


def model_rows(model: type[BaseModel]) -> list[tuple[str, str, str, str, str]]:
    """(field, type, required, constraints, description) of a model's JSON schema, nested
    objects flattened into dotted names."""
    schema = model.model_json_schema()
    defs: Mapping[str, Any] = schema.get("$defs", {})
    rows: list[tuple[str, str, str, str, str]] = []

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        required = set(node.get("required", ()))
        for field, prop in node.get("properties", {}).items():
            name = prefix + field
            target = defs.get(_ref_name(prop["$ref"]), {}) if "$ref" in prop else prop
            items = prop.get("items", {})
            item_target = defs.get(_ref_name(items["$ref"]), {}) if "$ref" in items else items
            if "properties" in target:
                kind = "object"
            elif "properties" in item_target:
                kind = "array of objects"
            else:
                kind = schema_type(target if "$ref" in prop else prop)
            limits = [schema_limits(target)] if schema_limits(target) else []
            if prop.get("default") is not None:
                limits.append(f"default {_code(prop['default'])}")
            rows.append(
                (
                    _code(name),
                    kind,
                    "yes" if field in required else "no",
                    ", ".join(limits),
                    _text(prop.get("description", target.get("description", ""))),
                )
            )
            if "properties" in target:
                walk(target, name + ".")
            elif "properties" in item_target:
                walk(item_target, name + "[].")

    walk(schema, "")
    return rows


def targets_markdown() -> str:
    from flows.targets import all_targets

    targets = all_targets()
    out = _table(
        ("Target", "What", "State", "Pre-flight", "Read-back"),
        [
            (
                f"[`{t.name}`](#target-{t.name})",
                _text(t.description),
                _code(t.backend.__name__ if hasattr(t.backend, "__name__") else t.backend),
                "yes" if t.preflight else "no",
                "yes" if t.readback else "no",
            )
            for t in targets.values()
        ],
    )
    for target in targets.values():
        backend_doc = _first_line(target.backend)
        out += [f"## `{target.name}` {{ #target-{target.name} }}", "", _text(target.description), ""]
        out += [
            f"- Terraform module: `infrastructure/modules/{target.module}`",
            f"- Inputs: `{target.inputs.__name__}`; outputs: `{target.outputs.__name__}`",
            f"- State: `{getattr(target.backend, '__name__', target.backend)}`"
            + (f": {backend_doc}" if backend_doc else ""),
            "- Pre-flight checks before Terraform: " + ("yes" if target.preflight else "no"),
            "- Outputs read back through the cloud's SDK after apply: "
            + ("yes" if target.readback else "no"),
            "- Fields a change may not touch: "
            + (", ".join(_code(f) for f in target.immutable) if target.immutable else "none"),
            "",
            "Inputs:",
            "",
        ]
        out += _table(("Field", "Type", "Required", "Constraints", "Description"), model_rows(target.inputs))
        out += ["Outputs:", ""]
        out += _table(("Field", "Type", "Required", "Constraints", "Description"), model_rows(target.outputs))
    return "\n".join(out)


# The mkdocs hook ----------------------------------------------------------------------------
GENERATORS: dict[str, Callable[[], str]] = {
    "api": cache(api_markdown),
    "settings": cache(settings_markdown),
    "cli": cache(cli_markdown),
    "targets": cache(targets_markdown),
}


def render(markdown: str) -> str:
    """The page with each marker replaced by its generated section."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise ValueError(f"unknown docsgen marker {name!r}; known: {', '.join(GENERATORS)}")
        return GENERATORS[name]()

    return MARKER.sub(replace, markdown)


def on_page_markdown(markdown: str, *, page: Page, config: MkDocsConfig, files: Files) -> str:
    """mkdocs hook: fill in the generated sections of a page."""
    return render(markdown)
