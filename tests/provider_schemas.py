"""Terraform provider schemas, read offline so the cloud modules can be checked without a provider.

No provider can be downloaded here, but each prebuilt CDK for Terraform package
(``cdktf-cdktf-provider-*``, the ``schemas`` dependency group) carries its provider's full
schema in a JSII assembly: every resource and data source is a class whose ``*Config``
struct lists the arguments (required unless marked optional), a nested block is a
struct-typed property, and the class's own getters add the attributes only the provider
computes. Each property's docs link to the registry with the Terraform name as anchor, so
names are taken from there rather than guessed back from camelCase. Terraform's builtin
provider (``terraform_remote_state``) comes from the project's Terraform binary itself.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import importlib.util
import json
import re
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

# Provider source -> the Python distribution that carries its schema (pinned in pyproject).
PACKAGES = {
    "hashicorp/google": "cdktf-cdktf-provider-google",
    "hashicorp/aws": "cdktf-cdktf-provider-aws",
    "hashicorp/random": "cdktf-cdktf-provider-random",
}
BUILTIN = "terraform.io/builtin/terraform"

# "{@link https://registry.terraform.io/providers/hashicorp/aws/5.100.0/docs/resources/instance aws_instance}"
_CLASS_LINK = re.compile(
    r"\{@link https://registry\.terraform\.io/providers/(?P<source>[\w-]+/[\w-]+)/(?P<version>[\w.-]+)/docs"
    r"(?:/(?P<kind>resources|data-sources)/\w+)? (?P<name>[\w-]+)\}"
)
# "...docs/resources/instance#vpc_security_group_ids Instance#vpc_security_group_ids}"
_PROPERTY_LINK = re.compile(r"\{@link https://registry\.terraform\.io/providers/\S*#(\w+) [^}]*\}")
_BASES = {
    "cdktf.TerraformResource": "resource",
    "cdktf.TerraformDataSource": "data",
    "cdktf.TerraformProvider": "provider",
}


@dataclass(frozen=True)
class NestedBlock:
    required: bool
    schema: BlockSchema


@dataclass(frozen=True)
class BlockSchema:
    """What a block may contain: arguments (name -> required), nested blocks, and every
    attribute another expression may read (arguments, blocks and computed-only ones)."""

    arguments: Mapping[str, bool]
    blocks: Mapping[str, NestedBlock]
    computed: frozenset[str] = frozenset()

    @property
    def readable(self) -> frozenset[str]:
        return frozenset(self.arguments) | frozenset(self.blocks) | self.computed


@dataclass(frozen=True)
class ProviderSchema:
    source: str  # "hashicorp/google"
    version: str  # the provider version the schema is built from
    origin: str  # where the schema was read, for messages
    provider: BlockSchema
    resources: Mapping[str, BlockSchema] = field(repr=False)
    data_sources: Mapping[str, BlockSchema] = field(repr=False)

    def __str__(self) -> str:
        return f"{self.source} {self.version}"


def snake(camel: str) -> str:
    """cdktf's camelCase getter name back to Terraform's name; only used for computed-only
    getters, which carry no registry link."""
    return re.sub(r"[A-Z]", lambda m: "_" + m.group(0).lower(), camel)


def read_assembly(archive: Path) -> dict[str, Any]:
    """The ``.jsii`` manifest inside a package's ``_jsii/*.jsii.tgz`` (following a gzip redirect)."""
    with tarfile.open(archive, "r:gz") as tar:

        def member(name: str) -> bytes:
            handle = tar.extractfile(f"package/{name}")
            if handle is None:
                raise FileNotFoundError(f"{archive} has no package/{name}")
            return handle.read()

        assembly: dict[str, Any] = orjson.loads(member(".jsii"))
        if assembly.get("schema") == "jsii/file-redirect":
            data = member(assembly["filename"])
            if assembly.get("compression") == "gzip":
                data = gzip.decompress(data)
            assembly = orjson.loads(data)
    return assembly


def _struct_fqns(type_ref: Mapping[str, Any], structs: Mapping[str, Any]) -> list[str]:
    """Struct types a property's type mentions (directly, in a list/map, or in a union)."""
    if "fqn" in type_ref:
        return [type_ref["fqn"]] if type_ref["fqn"] in structs else []
    if "collection" in type_ref:
        return _struct_fqns(type_ref["collection"]["elementtype"], structs)
    if "union" in type_ref:
        return [fqn for member in type_ref["union"]["types"] for fqn in _struct_fqns(member, structs)]
    return []


def _terraform_name(prop: Mapping[str, Any]) -> str:
    docs = prop.get("docs", {})
    links = _PROPERTY_LINK.findall(f"{docs.get('summary', '')} {docs.get('remarks', '')}")
    return links[-1] if links else snake(prop["name"])


class _Assembly:
    """Turns the JSII types of one package into block schemas, each struct once."""

    def __init__(self, types: Mapping[str, Any]) -> None:
        self.types = types
        self.structs = {fqn: t for fqn, t in types.items() if t["kind"] == "interface" and t.get("datatype")}
        self.built: dict[str, BlockSchema] = {}

    def properties(self, fqn: str) -> list[Mapping[str, Any]]:
        struct = self.structs[fqn]
        inherited = [
            p
            for parent in struct.get("interfaces", [])
            if parent in self.structs
            for p in self.properties(parent)
        ]
        return [*inherited, *struct.get("properties", [])]

    def block(self, fqn: str) -> BlockSchema:
        if fqn in self.built:
            return self.built[fqn]
        arguments: dict[str, bool] = {}
        blocks: dict[str, NestedBlock] = {}
        for prop in self.properties(fqn):
            name, required = _terraform_name(prop), not prop.get("optional", False)
            nested = _struct_fqns(prop["type"], self.structs)
            if nested:
                blocks[name] = NestedBlock(required, self.block(nested[0]))
            else:
                arguments[name] = required
        self.built[fqn] = BlockSchema(arguments, blocks)
        return self.built[fqn]

    def resource(self, cls: Mapping[str, Any]) -> BlockSchema:
        """The config struct plus the class's getters the config does not hold: computed-only."""
        config = self.block(config_fqn(cls))
        getters = {
            snake(p["name"])
            for p in cls.get("properties", [])
            if not p.get("static") and not p["name"].endswith("Input")
        }
        return replace(config, computed=frozenset(getters - set(config.arguments) - set(config.blocks)))


def config_fqn(cls: Mapping[str, Any]) -> str:
    params = cls.get("initializer", {}).get("parameters", [])
    config = [str(p["type"]["fqn"]) for p in params if p["name"] == "config" and "fqn" in p["type"]]
    if not config:
        raise ValueError(f"{cls['fqn']} takes no config struct")
    return config[0]


def from_assembly(assembly: Mapping[str, Any], origin: str) -> ProviderSchema:
    reader = _Assembly(assembly["types"])
    resources: dict[str, BlockSchema] = {}
    data_sources: dict[str, BlockSchema] = {}
    provider: BlockSchema | None = None
    source = version = ""
    for cls in assembly["types"].values():
        kind = _BASES.get(cls.get("base", "")) if cls["kind"] == "class" else None
        if kind is None:
            continue
        link = _CLASS_LINK.search(cls.get("docs", {}).get("summary", ""))
        if link is None:
            raise ValueError(f"{origin}: {cls['fqn']} does not name its Terraform type")
        schema = reader.block(config_fqn(cls)) if kind == "provider" else reader.resource(cls)
        if kind == "provider":
            provider, source, version = schema, link["source"], link["version"]
        else:
            (resources if kind == "resource" else data_sources)[link["name"]] = schema
    if provider is None:
        raise ValueError(f"{origin} holds no provider class")
    return ProviderSchema(source, version, origin, provider, resources, data_sources)


def _from_terraform_block(block: Mapping[str, Any]) -> BlockSchema:
    attributes = block.get("attributes", {})
    return BlockSchema(
        arguments={
            n: bool(a.get("required"))
            for n, a in attributes.items()
            if a.get("required") or a.get("optional")
        },
        blocks={
            n: NestedBlock(b.get("min_items", 0) > 0, _from_terraform_block(b["block"]))
            for n, b in block.get("block_types", {}).items()
        },
        computed=frozenset(n for n, a in attributes.items() if not (a.get("required") or a.get("optional"))),
    )


def builtin_schema(terraform: Path) -> ProviderSchema:
    """The builtin ``terraform`` provider's schema, as ``terraform providers schema -json``
    prints it; the builtin provider needs no download, so ``init`` works offline."""
    with tempfile.TemporaryDirectory() as tmp:

        def terraform_says(*args: str) -> Any:
            done = subprocess.run(
                [str(terraform), *args], cwd=tmp, capture_output=True, text=True, check=True
            )
            return json.loads(done.stdout) if "-json" in args else None

        Path(tmp, "main.tf").write_text('data "terraform_remote_state" "any" {\n  backend = "local"\n}\n')
        terraform_says("init", "-backend=false", "-input=false", "-no-color")
        schema = terraform_says("providers", "schema", "-json")["provider_schemas"][BUILTIN]
        version = terraform_says("version", "-json")
    return ProviderSchema(
        source=BUILTIN,
        version=version["terraform_version"],
        origin=f"terraform {version['terraform_version']}",
        provider=BlockSchema({}, {}),
        resources={
            n: _from_terraform_block(s["block"]) for n, s in schema.get("resource_schemas", {}).items()
        },
        data_sources={
            n: _from_terraform_block(s["block"]) for n, s in schema.get("data_source_schemas", {}).items()
        },
    )


def package_schema(distribution: str) -> ProviderSchema:
    """The schema in an installed ``cdktf-cdktf-provider-*`` distribution, found without
    importing it (importing would start the JSII runtime)."""
    module = distribution.replace("-", "_")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"{distribution} is not installed: it is in the 'schemas' dependency group (uv sync --frozen)"
        )
    archives = sorted(Path(next(iter(spec.submodule_search_locations)), "_jsii").glob("*.jsii.tgz"))
    if len(archives) != 1:
        raise FileNotFoundError(f"{distribution}: expected one _jsii/*.jsii.tgz, found {archives}")
    origin = f"{distribution} {importlib.metadata.version(distribution)}"
    return from_assembly(read_assembly(archives[0]), origin)


class Schemas:
    """Every provider schema a module may need, each read once and on first use."""

    def __init__(self, terraform: Path) -> None:
        self.terraform = terraform
        self.loaded: dict[str, ProviderSchema] = {}

    def get(self, source: str) -> ProviderSchema:
        if source not in self.loaded:
            self.loaded[source] = self.load(source)
        return self.loaded[source]

    def load(self, source: str) -> ProviderSchema:
        if source == BUILTIN:
            return builtin_schema(self.terraform)
        if source not in PACKAGES:
            raise KeyError(f"no schema package for provider {source}; known: {sorted(PACKAGES)}")
        schema = package_schema(PACKAGES[source])
        if schema.source != source:
            raise ValueError(f"{schema.origin} holds {schema.source}, not {source}")
        return schema
