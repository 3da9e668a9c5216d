"""The catalog: every event type, its topic, schema, retention and table.

``schemas/catalog.yaml`` is the single source of truth; everything that names a
topic, a table or a retention reads it through :func:`load_catalog`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Literal

import fastjsonschema
import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable

from loom.errors import CatalogError, UnknownEventTypeError

__all__ = [
    "DEAD_LETTER_TYPE",
    "SCHEMA_ID_BASE",
    "Catalog",
    "EventType",
    "Example",
    "Violation",
    "column_json_types",
    "compile_fast_check",
    "default_catalog",
    "default_schemas_dir",
    "describe",
    "load_catalog",
]

SCHEMA_ID_BASE = "https://schemas.loom.dev/"
# The type every host sends what it gave up on to (an entry of catalog.yaml like any other).
DEAD_LETTER_TYPE = "system.events.deadletter"
_RETENTION = re.compile(r"^(?P<n>[1-9][0-9]*)(?P<unit>[dh])$")
_TYPE_NAME = r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+){2,5}$"
# 52: room for the names derived from it ("loom_stage_" + name, name + "_pYYYYMMDD")
# within PostgreSQL's 63 bytes; a longer one would be cut short and collide.
_TABLE_NAME = r"^[a-z][a-z0-9_]{0,51}$"
_TABLE_NAME_RE = re.compile(_TABLE_NAME)

Compression = Literal["producer", "lz4", "zstd", "gzip", "snappy", "uncompressed"]


class _Defaults(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key: Literal["device_id", "none"] = "device_id"
    compression: Compression = "producer"
    ingest: bool = False
    max_bytes: int = Field(default=262_144, ge=1024)


class EventType(BaseModel):
    """One catalog entry. ``data_schema`` is the loaded JSON Schema of the event's ``data``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = Field(pattern=_TYPE_NAME)
    schema_version: str = Field(pattern=r"^[1-9][0-9]*\.[0-9]+$")
    partitions: int | None = Field(default=None, ge=1, le=1024)
    key: Literal["device_id", "none"]
    compression: Compression
    retention: timedelta
    retention_why: str = Field(min_length=1)
    table: str | None = Field(pattern=_TABLE_NAME)
    ingest: bool
    max_bytes: int = Field(ge=1024, le=64 * 1024 * 1024)
    rest_path: str | None = Field(default=None, pattern=r"^(/[a-z0-9-]+)+$")
    columns: tuple[str, ...] = Field(default=(), max_length=32)
    description: str = Field(min_length=1)
    # A command that acts on a device with the user's own powers (a shell, keystrokes,
    # files): refused unless enabled for that device, and never posted by devices.
    dangerous: bool = False
    data_schema: dict[str, Any] = Field(default_factory=dict, exclude=True)

    @field_validator("retention", mode="before")
    @classmethod
    def _parse_retention(cls, value: object) -> object:
        if isinstance(value, str):
            match = _RETENTION.match(value)
            if match is None:
                raise ValueError(f"{value!r} is not <n>d or <n>h, e.g. 30d")
            n = int(match["n"])
            return timedelta(days=n) if match["unit"] == "d" else timedelta(hours=n)
        return value

    @model_validator(mode="after")
    def _dangerous_not_ingested(self) -> EventType:
        if self.dangerous and self.ingest:
            raise ValueError("a dangerous type cannot be posted by devices: set ingest to false")
        return self

    @property
    def major(self) -> int:
        return int(self.schema_version.split(".")[0])

    @property
    def schema_relpath(self) -> str:
        """Path of the schema file below the schemas directory."""
        return f"{self.type.replace('.', '/')}/v{self.major}.json"

    @property
    def schema_id(self) -> str:
        return SCHEMA_ID_BASE + self.schema_relpath

    @property
    def stored(self) -> bool:
        return self.table is not None

    @property
    def keyed_by_device(self) -> bool:
        return self.key == "device_id"

    @property
    def retention_ms(self) -> int:
        return int(self.retention.total_seconds() * 1000)

    @property
    def retention_text(self) -> str:
        days, rest = divmod(int(self.retention.total_seconds()), 86400)
        return f"{days} d" if not rest else f"{int(self.retention.total_seconds() // 3600)} h"

    def topic(self, prefix: str = "") -> str:
        """The Kafka topic: the type's name, behind ``<prefix>.`` when a prefix is set."""
        return f"{prefix}.{self.type}" if prefix else self.type

    def partitions_or(self, default: int) -> int:
        return self.partitions if self.partitions is not None else default


@dataclass(frozen=True)
class Violation:
    """One way data breaks a schema: RFC 6901 pointer, JSONPath and message."""

    pointer: str
    path: str
    message: str


def describe(violations: list[Violation]) -> str:
    """The first problem, where it is: ``'/latitude': 91 is greater than …``."""
    first = violations[0]
    more = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
    return f"'{first.pointer or '/'}': {first.message}{more}"


@dataclass(frozen=True)
class Example:
    """A golden example payload of a type, labelled valid or invalid by its folder."""

    type: str
    path: Path
    valid: bool

    def load(self) -> Any:
        return json.loads(self.path.read_text())


@dataclass(frozen=True)
class Catalog:
    """All event types, looked up by type or by topic, with schema validation."""

    root: Path
    types: Mapping[str, EventType]
    registry: Registry = field(repr=False)

    def __getitem__(self, name: str) -> EventType:
        try:
            return self.types[name]
        except KeyError:
            raise UnknownEventTypeError(f"{name!r} is not an event type in the catalog") from None

    def __contains__(self, name: object) -> bool:
        return name in self.types

    def __iter__(self) -> Iterator[EventType]:
        return iter(self.types.values())

    def __len__(self) -> int:
        return len(self.types)

    def by_topic(self, topic: str, prefix: str = "") -> EventType:
        name = topic[len(prefix) + 1 :] if prefix and topic.startswith(prefix + ".") else topic
        if prefix and name == topic:
            raise UnknownEventTypeError(f"topic {topic!r} lacks the prefix {prefix!r}")
        return self[name]

    def stored(self) -> list[EventType]:
        return [t for t in self if t.stored]

    def ingestable(self) -> list[EventType]:
        return [t for t in self if t.ingest]

    @cached_property
    def _validators(self) -> dict[str, Draft202012Validator]:
        # Bundled (shared $refs inlined): resolving a $ref on every validation through the
        # registry costs more than the validation itself.
        return {
            t.type: Draft202012Validator(
                self.bundled_schema(t.type),
                format_checker=Draft202012Validator.FORMAT_CHECKER,
            )
            for t in self
        }

    @cached_property
    def _fast_checks(self) -> dict[str, Callable[[Any], bool] | None]:
        return {}  # filled per type on first use: a function needs only its own types

    def _fast_check(self, name: str) -> Callable[[Any], bool] | None:
        if name not in self._fast_checks:
            self._fast_checks[name] = compile_fast_check(self.bundled_schema(name))
        return self._fast_checks[name]

    def warm(self) -> None:
        """Compile every validator now (about half a second) instead of on first use."""
        for t in self:
            self._fast_check(t.type)
        _ = self._validators

    def violations(self, name: str, data: Any) -> list[Violation]:
        """Every way ``data`` breaks the schema of ``name``, in document order.

        Valid data is confirmed by a compiled check (fastjsonschema, ~20x faster);
        anything it rejects goes through jsonschema, which decides and names each
        problem. So the compiled check can only speed up "valid", never decide "invalid".
        """
        fast = self._fast_check(self[name].type)
        if fast is not None and fast(data):
            return []
        validator = self._validators[self[name].type]
        found = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
        return [
            Violation(
                pointer="".join(f"/{str(p).replace('~', '~0').replace('/', '~1')}"
                                for p in e.absolute_path),
                path=e.json_path,
                message=e.message,
            )
            for e in found
        ]  # fmt: skip

    def errors(self, name: str, data: Any) -> list[str]:
        """Every way ``data`` breaks the schema of ``name``, as '<json path>: message'."""
        return [f"{v.path}: {v.message}" for v in self.violations(name, data)]

    def bundled_schema(self, name: str) -> dict[str, Any]:
        """The schema of ``name`` with shared ``$ref``s inlined (for OpenAPI documents)."""
        resolver = self.registry.resolver(base_uri=self[name].schema_id)

        def inline(node: Any) -> Any:
            if isinstance(node, dict):
                if isinstance(node.get("$ref"), str):
                    target = resolver.lookup(node["$ref"]).contents
                    rest = {k: inline(v) for k, v in node.items() if k != "$ref"}
                    return {**inline(target), **rest}
                return {k: inline(v) for k, v in node.items() if k not in ("$schema", "$id")}
            if isinstance(node, list):
                return [inline(v) for v in node]
            return node

        bundled: dict[str, Any] = inline(self[name].data_schema)
        return bundled

    def examples(self, name: str) -> list[Example]:
        folder = self.root / self[name].type.replace(".", "/") / "examples"
        return [
            Example(name, path, valid=label == "valid")
            for label in ("valid", "invalid")
            for path in sorted((folder / label).glob("*.json"))
        ]


# Keywords whose meaning is the same in draft 7 (what fastjsonschema compiles) and 2020-12.
_DRAFT7_SAFE = frozenset({
    "additionalProperties", "allOf", "anyOf", "const", "contentEncoding", "contentMediaType",
    "default", "description", "enum", "examples", "exclusiveMaximum", "exclusiveMinimum",
    "format", "if", "then", "else", "items", "maxItems", "maxLength", "maxProperties", "maximum",
    "minItems", "minLength", "minProperties", "minimum", "multipleOf", "not", "oneOf", "pattern",
    "patternProperties", "properties", "propertyNames", "required", "title", "type", "uniqueItems",
    "$comment", "deprecated", "readOnly", "writeOnly",
})  # fmt: skip
_NAMED = ("properties", "patternProperties")
_OPAQUE = ("description", "examples", "title", "enum", "const", "required", "default", "$comment")


def _keywords(node: Any, found: set[str]) -> set[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            found.add(key)
            if key in _NAMED and isinstance(value, dict):
                for sub in value.values():
                    _keywords(sub, found)
            elif key not in _OPAQUE:
                _keywords(value, found)
    elif isinstance(node, list):
        for item in node:
            _keywords(item, found)
    return found


def compile_fast_check(schema: dict[str, Any]) -> Callable[[Any], bool] | None:
    """A compiled yes/no check of ``schema``, or None where draft 7 would mean otherwise.

    Formats are checked by jsonschema's own format checker, so both agree on them.
    """
    if _keywords(schema, set()) - _DRAFT7_SAFE:
        return None
    checker = Draft202012Validator.FORMAT_CHECKER
    formats = {
        name: (lambda value, name=name: checker.conforms(value, name)) for name in checker.checkers
    }
    draft7 = {**schema, "$schema": "http://json-schema.org/draft-07/schema#"}
    try:
        compiled = fastjsonschema.compile(draft7, formats=formats)
    except (fastjsonschema.JsonSchemaDefinitionException, re.error):
        return None  # e.g. a pattern fastjsonschema rewrites badly: jsonschema alone then

    def check(data: Any) -> bool:
        try:
            compiled(data)
        except fastjsonschema.JsonSchemaValueException:
            return False
        return True

    return check


def default_schemas_dir() -> Path:
    """``loom/_schemas`` in an installed wheel, else ``schemas/`` of the source tree."""
    here = Path(__file__).resolve().parent
    packaged = here / "_schemas"
    return packaged if packaged.is_dir() else here.parent / "schemas"


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise CatalogError(str(path), "(file)", "not found") from None
    except yaml.YAMLError as exc:
        raise CatalogError(str(path), "(yaml)", str(exc)) from None


def _read_schema(path: Path, expected_id: str, *, check: bool) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise CatalogError(str(path), "(file)", "schema file not found") from None
    except json.JSONDecodeError as exc:
        raise CatalogError(str(path), "(json)", str(exc)) from None
    if not isinstance(doc, dict):
        raise CatalogError(str(path), "(root)", "a schema must be a JSON object")
    if doc.get("$schema") != "https://json-schema.org/draft/2020-12/schema":
        raise CatalogError(str(path), "$schema", "must be the 2020-12 meta-schema URI")
    if doc.get("$id") != expected_id:
        raise CatalogError(str(path), "$id", f"is {doc.get('$id')!r}, expected {expected_id!r}")
    if check:
        try:
            Draft202012Validator.check_schema(doc)
        except SchemaError as exc:
            raise CatalogError(str(path), exc.json_path, exc.message) from None
    return doc


def _refs(node: Any, where: str = "$") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield where, value
            else:
                yield from _refs(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _refs(value, f"{where}[{i}]")


def _entry_field(index: int, entry: Any, loc: tuple[int | str, ...]) -> str:
    name = entry.get("type", "?") if isinstance(entry, dict) else "?"
    return f"types[{index}] ({name}).{'.'.join(str(p) for p in loc) or '(entry)'}"


def _parse_types(path: Path, raw: Any) -> list[EventType]:
    if not isinstance(raw, dict) or set(raw) - {"defaults", "types"}:
        extra = sorted(set(raw) - {"defaults", "types"}) if isinstance(raw, dict) else []
        raise CatalogError(str(path), ", ".join(extra) or "(root)", "only 'defaults' and 'types'")
    try:
        defaults = _Defaults.model_validate(raw.get("defaults") or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        raise CatalogError(str(path), f"defaults.{err['loc'][0]}", err["msg"]) from None
    entries = raw.get("types")
    if not isinstance(entries, list) or not entries:
        raise CatalogError(str(path), "types", "must be a non-empty list")
    parsed: list[EventType] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise CatalogError(str(path), f"types[{index}]", "must be a mapping")
        if "data_schema" in entry:
            raise CatalogError(
                str(path), _entry_field(index, entry, ("data_schema",)), "unknown field"
            )
        try:
            parsed.append(EventType.model_validate({**defaults.model_dump(), **entry}))
        except ValidationError as exc:
            err = exc.errors()[0]
            msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
            raise CatalogError(str(path), _entry_field(index, entry, err["loc"]), msg) from None
    return parsed


def _check_unique(path: Path, types: list[EventType]) -> None:
    for attr in ("type", "table", "rest_path"):
        seen: dict[str, int] = {}
        for index, t in enumerate(types):
            value = getattr(t, attr)
            if value is None:
                continue
            if value in seen:
                raise CatalogError(
                    str(path),
                    f"types[{index}] ({t.type}).{attr}",
                    f"{value!r} is also used by types[{seen[value]}]",
                )
            seen[value] = index


# The columns every event table has (loom.store.tables); a typed column may not reuse one.
COMMON_COLUMN_NAMES = frozenset(
    {"time", "device_id", "source", "id", "received_at", "stored_at", "schema_version", "data"}
)
# JSON Schema types a typed column may take (``null`` besides one of them is allowed).
COLUMN_TYPES = frozenset({"number", "integer", "boolean", "string"})


def _check_columns(path: Path, index: int, t: EventType) -> None:
    """Typed columns name top-level properties of one scalar JSON type, in a stored type."""
    if t.columns and t.table is None:
        raise CatalogError(str(path), f"types[{index}] ({t.type}).columns", "type is not stored")
    properties = t.data_schema.get("properties", {})
    for name in t.columns:
        if name in COMMON_COLUMN_NAMES:
            raise CatalogError(
                str(path), f"types[{index}] ({t.type}).columns",
                f"{name!r} is a column every table has already",
            )  # fmt: skip
        kinds = column_json_types(properties.get(name))
        if not _TABLE_NAME_RE.match(name) or len(kinds) != 1 or not kinds <= COLUMN_TYPES:
            raise CatalogError(
                str(path),
                f"types[{index}] ({t.type}).columns",
                f"{name!r} is not a top-level property of one scalar type in {t.schema_relpath}",
            )


def column_json_types(prop: Any) -> set[str]:
    """The non-null JSON types a property's schema allows (empty if it names none)."""
    if not isinstance(prop, dict):
        return set()
    kind = prop.get("type")
    kinds = {kind} if isinstance(kind, str) else set(kind or ())
    return kinds - {"null"}


def load_catalog(root: Path | None = None, *, check_schemas: bool = True) -> Catalog:
    """Load and check ``<root>/catalog.yaml`` and every schema it names.

    ``check_schemas=False`` skips checking each schema against the 2020-12
    meta-schema (most of the load time); services start that way with the shipped
    catalog, which `loom catalog` and the tests check in full.
    """
    root = (root or default_schemas_dir()).resolve()
    path = root / "catalog.yaml"
    types = _parse_types(path, _read_yaml(path))
    _check_unique(path, types)
    registry: Registry = Registry()
    for common in sorted((root / "common").glob("v*.json")):
        doc = _read_schema(common, SCHEMA_ID_BASE + f"common/{common.name}", check=check_schemas)
        registry = registry.with_resource(doc["$id"], Resource.from_contents(doc))
    loaded: dict[str, EventType] = {}
    for t in types:
        doc = _read_schema(root / t.schema_relpath, t.schema_id, check=check_schemas)
        registry = registry.with_resource(doc["$id"], Resource.from_contents(doc))
        loaded[t.type] = t.model_copy(update={"data_schema": doc})
    for index, t in enumerate(loaded.values()):
        _check_columns(path, index, t)
        resolver = registry.resolver(base_uri=t.schema_id)
        for where, ref in _refs(t.data_schema):
            try:
                resolver.lookup(ref)
            except Unresolvable:
                raise CatalogError(
                    str(root / t.schema_relpath), f"{where}.$ref", f"cannot resolve {ref!r}"
                ) from None
    return Catalog(root=root, types=loaded, registry=registry)


@lru_cache(maxsize=1)
def _default_catalog() -> Catalog:
    return load_catalog(check_schemas=False)


def default_catalog() -> Catalog:
    """The catalog shipped with Loom, loaded once per process (schemas checked by tests)."""
    return _default_catalog()
