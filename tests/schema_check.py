"""A Terraform module checked against its providers' schemas, as ``terraform validate`` would
with the providers installed (which cannot be done here).

The ``.tf`` files are parsed by python-hcl2's HCL grammar (its Lark tree keeps blocks,
arguments, references and line numbers apart); nothing is matched with regexes. Checked:
each provider the module requires admits the version its schema is built from; every
resource, data source and provider block exists in its provider; each argument and nested
block exists there (a block as a block, an argument as an argument, no computed-only
attribute set); every required argument and block is set; every reference to a resource
or data source names a declared one and an attribute the provider has; ``ignore_changes``
names real arguments. A struct in the schema is taken as a nested block, which is right for
SDK-based resources (all these modules use); a plugin-framework nested *attribute* would be
reported as "a nested block".
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import hcl2
from lark import Token, Tree

from tests.provider_schemas import BUILTIN, BlockSchema, ProviderSchema, Schemas

META_ARGUMENTS = {
    "resource": {"count", "for_each", "depends_on", "provider"},
    "data": {"count", "for_each", "depends_on", "provider"},
    "provider": {"alias", "version"},
}
META_BLOCKS = {
    "resource": {"lifecycle", "provisioner", "connection"},
    "data": {"lifecycle"},
    "provider": set(),
}
# Roots of references that are not resources (Terraform's own namespaces).
NOT_RESOURCES = {"var", "local", "module", "path", "terraform", "count", "each", "self"}
CHAINS = {"get_attr_expr_term", "index_expr_term", "full_splat_expr_term", "attr_splat_expr_term"}
# Blocks whose expressions hold no resource references (types, constraints).
NO_REFERENCES = {"variable", "terraform"}

Step = str | None  # an attribute name, or None for an index or splat


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    checked: set[str] = field(default_factory=set)  # "type.name path.to.attribute" that matched


def _line(node: Tree[Token] | Token) -> int:
    if isinstance(node, Token):
        return node.line or 0
    for token in node.scan_values(lambda v: isinstance(v, Token)):
        return int(token.line or 0)
    return 0


def _subtrees(node: Tree[Token], *kinds: str) -> list[Tree[Token]]:
    return [c for c in node.children if isinstance(c, Tree) and c.data in kinds]


def _name(identifier: Tree[Token]) -> str:
    return str(identifier.children[0])


def _string(node: Tree[Token]) -> str | None:
    """A literal string (no interpolation); None for anything else."""
    if node.data == "expr_term" and len(node.children) == 1 and isinstance(node.children[0], Tree):
        return _string(node.children[0])
    if node.data == "identifier":
        return _name(node)
    if node.data != "string":
        return None
    parts = _subtrees(node, "string_part")
    if any(isinstance(c, Tree) for p in parts for c in p.children):
        return None
    return "".join(str(c) for p in parts for c in p.children)


@dataclass(frozen=True)
class Block:
    type: str
    labels: tuple[str, ...]
    body: Tree[Token]
    line: int

    @property
    def blocks(self) -> list[Block]:
        return [_block(b) for b in _subtrees(self.body, "block")]

    @property
    def attributes(self) -> dict[str, tuple[Tree[Token], int]]:
        """Each argument's name -> its expression and line."""
        return {
            _name(_subtrees(a, "identifier")[0]): (
                [c for c in a.children if isinstance(c, Tree)][-1],
                _line(a),
            )
            for a in _subtrees(self.body, "attribute")
        }


def _block(tree: Tree[Token]) -> Block:
    head = [c for c in tree.children if isinstance(c, Tree) and c.data in ("identifier", "string")]
    labels = tuple(_string(c) or "" for c in head[1:])
    bodies = _subtrees(tree, "body")
    return Block(_name(head[0]), labels, bodies[0] if bodies else Tree("body", []), _line(tree))


def _object(expr: Tree[Token]) -> dict[str, str | None]:
    """A literal object's keys and literal string values ({ source = "hashicorp/aws" })."""
    objects = list(expr.find_data("object"))
    out: dict[str, str | None] = {}
    for elem in _subtrees(objects[0], "object_elem") if objects else []:
        key, value = _subtrees(elem, "object_elem_key")[0], _subtrees(elem, "expr_term")[-1]
        out[_string(_subtrees(key, "expr_term", "identifier", "string")[0]) or ""] = _string(value)
    return out


def _traversal(expr: Tree[Token]) -> tuple[list[Step], list[Tree[Token]]] | None:
    """A reference such as ``aws_instance.this[0].id`` as steps (``["aws_instance", "this",
    None, "id"]``), with the index expressions met on the way; None if ``expr`` is not one."""
    if expr.data != "expr_term" or len(expr.children) != 1 or not isinstance(expr.children[0], Tree):
        return None
    inner = expr.children[0]
    if inner.data == "identifier":
        return [_name(inner)], []
    if inner.data not in CHAINS:
        return None
    base = _traversal(_subtrees(inner, "expr_term")[0])
    if base is None:
        return None
    steps, indexes = base
    for part in inner.children[1:]:
        if not isinstance(part, Tree):
            continue
        if part.data == "get_attr":
            steps = [*steps, _name(_subtrees(part, "identifier")[0])]
        else:  # an index, a splat (whose own .attr steps follow it)
            steps = [*steps, None]
            indexes = [*indexes, *_subtrees(part, "expr_term")]
            for attr in part.find_data("get_attr"):
                steps = [*steps, _name(_subtrees(attr, "identifier")[0])]
    return steps, indexes


@dataclass
class ModuleCheck:
    module: Path
    schemas: Schemas
    report: Report = field(default_factory=Report)
    files: dict[str, list[Block]] = field(default_factory=dict)
    required: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # local name -> source, version
    declared: set[tuple[str, str, str]] = field(default_factory=set)  # (resource|data, type, name)

    def problem(self, file: str, line: int, where: str, message: str) -> None:
        self.report.problems.append(f"{self.module.name}/{file}:{line}: {where}: {message}")

    def run(self) -> Report:
        for tf in sorted(self.module.glob("*.tf")):
            self.files[tf.name] = [
                _block(b) for b in _subtrees(hcl2.parses_to_tree(tf.read_text()).children[0], "block")
            ]
        for file, blocks in self.files.items():
            for block in blocks:
                if block.type == "terraform":
                    self.required_providers(file, block)
                if block.type in ("resource", "data") and len(block.labels) == 2:
                    self.declared.add((block.type, *block.labels))
        for file, blocks in self.files.items():
            for block in blocks:
                if block.type in ("resource", "data", "provider"):
                    self.check_top_block(file, block)
                if block.type not in NO_REFERENCES:
                    self.check_references(file, block.body, {}, _address(block))
        return self.report

    def required_providers(self, file: str, block: Block) -> None:
        for inner in block.blocks:
            if inner.type == "required_providers":
                for local, (expr, line) in inner.attributes.items():
                    spec = _object(expr)
                    source = (spec.get("source") or f"hashicorp/{local}").removeprefix(
                        "registry.terraform.io/"
                    )
                    constraint = spec.get("version")
                    self.required[local] = (source, constraint)
                    try:
                        schema = self.schemas.get(source)
                    except KeyError as missing:
                        self.problem(file, line, f"required_providers.{local}", str(missing))
                        continue
                    self.report.checked.add(f"required_providers.{local} {constraint} admits {schema}")
                    if constraint and not allows(constraint, schema.version):
                        message = (
                            f"'{constraint}' does not allow {schema}, which {schema.origin} is built from;"
                            " pin a schema package built from an allowed version"
                        )
                        self.problem(file, line, f"required_providers.{local}", message)

    def provider_of(self, file: str, block: Block, local: str) -> ProviderSchema | None:
        if local == "terraform":
            return self.schemas.get(BUILTIN)
        if local not in self.required:
            self.problem(
                file, block.line, " ".join(block.labels), f"provider '{local}' is not in required_providers"
            )
            return None
        try:
            return self.schemas.get(self.required[local][0])
        except KeyError:
            return None  # reported at required_providers

    def check_top_block(self, file: str, block: Block) -> None:
        kind = block.type
        if kind == "provider":
            provider = self.provider_of(file, block, block.labels[0])
            if provider is not None:
                self.check_body(file, _address(block), provider, provider.provider, block, kind, "")
            return
        type_ = block.labels[0]
        provider = self.provider_of(file, block, self.local_provider(kind, type_, block))
        if provider is None:
            return
        where = _address(block)
        kinds = provider.resources if kind == "resource" else provider.data_sources
        schema = kinds.get(type_)
        if schema is None:
            noun = "resource type" if kind == "resource" else "data source"
            self.problem(file, block.line, where, f"{provider} has no {noun} {type_}{_hint(type_, kinds)}")
            return
        self.check_body(file, where, provider, schema, block, kind, "")

    @staticmethod
    def local_provider(mode: str, type_: str, block: Block | None = None) -> str:
        """The provider's local name: the ``provider`` meta-argument's, else the type's prefix."""
        if (mode, type_) == ("data", "terraform_remote_state"):
            return "terraform"
        alias = block.attributes.get("provider") if block is not None else None
        found = _traversal(alias[0]) if alias is not None else None
        return found[0][0] or "" if found else type_.split("_", 1)[0]

    def check_body(
        self,
        file: str,
        where: str,
        provider: ProviderSchema,
        schema: BlockSchema,
        block: Block,
        kind: str,
        path: str,
    ) -> None:
        top = path == ""
        for name, (_, line) in block.attributes.items():
            if top and name in META_ARGUMENTS.get(kind, set()):
                continue
            label = f"{path}{name}"
            if name in schema.blocks:
                self.problem(
                    file, line, where, f"{label} is a nested block in {provider}: write `{name} {{ ... }}`"
                )
            elif name in schema.computed:
                self.problem(file, line, where, f"{label} is computed by {provider} and cannot be set")
            elif name not in schema.arguments:
                self.problem(
                    file,
                    line,
                    where,
                    f"{label} is not an argument in {provider}{_hint(name, schema.arguments)}",
                )
            else:
                self.report.checked.add(f"{where} {label}")
        present = set(block.attributes)
        for inner in block.blocks:
            name = inner.labels[0] if inner.type == "dynamic" and inner.labels else inner.type
            present.add(name)
            if top and inner.type in META_BLOCKS.get(kind, set()):
                if inner.type == "lifecycle":
                    self.check_ignore_changes(file, where, provider, schema, inner)
                continue
            label = f"{path}{name}"
            if name in schema.arguments:
                self.problem(
                    file, inner.line, where, f"{label} is an argument in {provider}: write `{name} = ...`"
                )
            elif name not in schema.blocks:
                self.problem(
                    file,
                    inner.line,
                    where,
                    f"{label} is not a block in {provider}{_hint(name, schema.blocks)}",
                )
            else:
                self.report.checked.add(f"{where} {label}")
                content = (
                    next((b for b in inner.blocks if b.type == "content"), inner)
                    if inner.type == "dynamic"
                    else inner
                )
                self.check_body(file, where, provider, schema.blocks[name].schema, content, kind, f"{label}.")
        for name, required in sorted(schema.arguments.items()):
            if required and name not in present:
                self.problem(
                    file, block.line, where, f"required argument {path}{name} is not set ({provider})"
                )
        for name, nested in sorted(schema.blocks.items()):
            if nested.required and name not in present:
                self.problem(file, block.line, where, f"required block {path}{name} is missing ({provider})")

    def check_ignore_changes(
        self, file: str, where: str, provider: ProviderSchema, schema: BlockSchema, lifecycle: Block
    ) -> None:
        expr, line = lifecycle.attributes.get("ignore_changes", (None, 0))
        tuples = list(expr.find_data("tuple")) if expr is not None else []  # `all` has none
        for item in _subtrees(tuples[0], "expr_term") if tuples else []:
            found = _traversal(item)
            if found is None:
                continue
            root = found[0][0]
            if root and root != "all" and root not in schema.arguments and root not in schema.blocks:
                self.problem(file, line, where, f"ignore_changes names {root}, not an argument in {provider}")
            elif root:
                self.report.checked.add(f"{where} lifecycle.ignore_changes {root}")

    def check_references(
        self, file: str, node: Tree[Token], scope: dict[str, tuple[str, str, str]], where: str
    ) -> None:
        for kind in ("for_tuple_expr", "for_object_expr"):
            if node.data == kind:
                intro = _subtrees(node, "for_intro")[0]
                self.check_references(file, intro, scope, where)
                collection = _traversal(_subtrees(intro, "expr_term")[0])
                names = [_name(i) for i in _subtrees(intro, "identifier")]
                inner = dict(scope)
                address = self.resolve(collection[0], scope) if collection else None
                if collection and address and all(s is None for s in collection[0][len(address[3]) :]):
                    inner[names[-1]] = address[:3]  # the loop's value is one of the resource's instances
                for part in node.children:
                    if isinstance(part, Tree) and part.data != "for_intro":
                        self.check_references(file, part, inner, where)
                return
        if node.data == "object_elem_key":
            return
        if node.data == "block" and _name(_subtrees(node, "identifier")[0]) == "lifecycle":
            return  # ignore_changes names arguments, checked with the block
        if node.data == "attribute" and _name(_subtrees(node, "identifier")[0]) in ("provider", "providers"):
            return  # provider references, not resources
        found = _traversal(node)
        if found is not None:
            steps, indexes = found
            self.check_reference(file, _line(node), where, steps, scope)
            for index in indexes:
                self.check_references(file, index, scope, where)
            return
        for child in node.children:
            if isinstance(child, Tree):
                self.check_references(file, child, scope, where)

    def resolve(
        self, steps: list[Step], scope: dict[str, tuple[str, str, str]]
    ) -> tuple[str, str, str, list[Step]] | None:
        """The resource a reference starts from (mode, type, name) and the steps that named it."""
        root = steps[0]
        if root in scope:
            return (*scope[root], steps[:1])
        if root == "data" and len(steps) >= 3 and steps[1] and steps[2]:
            return ("data", steps[1], steps[2], steps[:3])
        if root and root not in NOT_RESOURCES and root != "data" and len(steps) >= 2 and steps[1]:
            return ("resource", root, steps[1], steps[:2])
        return None

    def check_reference(
        self, file: str, line: int, where: str, steps: list[Step], scope: dict[str, tuple[str, str, str]]
    ) -> None:
        address = self.resolve(steps, scope)
        if address is None:
            return
        mode, type_, name, head = address
        ref = ".".join(s for s in head if s)
        if (mode, type_, name) not in self.declared:
            self.problem(file, line, where, f"{ref} refers to no {mode} declared in the module")
            return
        rest = [s for s in steps[len(head) :] if s is not None]
        if not rest:
            return
        local = self.local_provider(mode, type_)
        if local != "terraform" and local not in self.required:
            return  # reported where the block is declared
        try:
            provider = self.schemas.get(BUILTIN if local == "terraform" else self.required[local][0])
        except KeyError:
            return  # reported at required_providers
        schema = (provider.resources if mode == "resource" else provider.data_sources).get(type_)
        if schema is None:
            return  # reported where the block is declared
        if rest[0] not in schema.readable:
            hint = _hint(rest[0], schema.readable)
            self.problem(
                file, line, where, f"{ref}.{rest[0]}: {type_} has no attribute {rest[0]} in {provider}{hint}"
            )
        else:
            self.report.checked.add(f"{where} -> {type_}.{rest[0]}")


def _address(block: Block) -> str:
    """How Terraform names a block in its messages: aws_instance.this, data.x.y, output.z."""
    if block.type == "resource":
        return ".".join(block.labels)
    if block.type == "provider":
        return f'provider "{block.labels[0]}"'
    return ".".join((block.type, *block.labels))


def _hint(name: str, known: object) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)  # type: ignore[call-overload]
    return f" (did you mean {close[0]}?)" if close else ""


def _version(text: str) -> tuple[int, ...]:
    parts = [int(p) for p in re.findall(r"\d+", text.split("-")[0])]
    return tuple([*parts, 0, 0, 0][:3])


def _clauses(constraint: str) -> Iterator[tuple[str, str]]:
    for clause in constraint.split(","):
        match = re.fullmatch(r"\s*(>=|<=|!=|~>|>|<|=)?\s*v?([\w.\-]+)\s*", clause)
        if match is None:
            raise ValueError(f"not a version constraint: {constraint!r}")
        yield match.group(1) or "=", match.group(2)


def allows(constraint: str, version: str) -> bool:
    """Terraform's version constraint syntax (``>= 5.0, < 7.0``, ``~> 5.1``)."""
    have = _version(version)
    for op, text in _clauses(constraint):
        want = _version(text)
        if op == "~>":
            given = len(text.split("."))
            upper = list(want[: max(given - 1, 1)])
            upper[-1] += 1
            ok = want <= have and have < tuple([*upper, 0, 0, 0][:3])
        else:
            compare = {"=": have == want, "!=": have != want, ">": have > want, ">=": have >= want}
            ok = {**compare, "<": have < want, "<=": have <= want}[op]
        if not ok:
            return False
    return True


def check_module(module: Path, schemas: Schemas) -> Report:
    return ModuleCheck(module, schemas).run()
