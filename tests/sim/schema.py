"""Checks JSON responses against the OpenAPI schemas embedded in Kalshi's API reference pages.

The pages under ``tests/data/openapi/`` are Kalshi's own (``shared/kalshi-docs/api-reference``),
each with one operation's OpenAPI document in a ````` ```yaml ````` fence. :func:`check` finds
the operation's response schema for a status, resolves ``$ref`` (keeping sibling keys such as
``nullable``, as Kalshi's generator intends), and validates an instance:

* types (``integer`` excludes booleans), ``enum``, ``nullable``, ``required``;
* ``additionalProperties: false`` (unknown fields) or a schema for extra fields;
* ``items``, ``minItems``/``maxItems``, ``allOf``/``anyOf``/``oneOf``, ``minimum``/``maximum``;
* ``format: date-time`` parses as RFC 3339;
* stricter than the docs, on purpose: a ``FixedPointDollars`` string has 4 or 6 decimals and a
  ``FixedPointCount`` string exactly 2 (what responses emit, per the schema descriptions).

Error responses are checked as Kalshi sends them: the ``ErrorResponse`` object wrapped in
``{"error": ...}``.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import yaml

__all__ = ["OPENAPI_DIR", "check", "problems", "response_schema"]

OPENAPI_DIR = Path(__file__).resolve().parent.parent / "data" / "openapi"

_FENCE = re.compile(r"````yaml[^\n]*\n(.*?)````", re.S)
_DOLLARS = re.compile(r"-?\d+\.\d{4}(\d{2})?")
_COUNT = re.compile(r"-?\d+\.\d{2}")
_NAMED_FORMATS = {"FixedPointDollars": _DOLLARS, "FixedPointCount": _COUNT}

Schema = dict[str, Any]

_ERROR_RESPONSE: Schema = {
    "type": "object",
    "properties": {
        "code": {"type": "string"},
        "message": {"type": "string"},
        "details": {"type": "string"},
    },
}
"""``components.schemas.ErrorResponse`` as every page that defines it spells it."""


@cache
def _document(page: str) -> Schema:
    text = (OPENAPI_DIR / f"{page}.md").read_text(encoding="utf-8")
    match = _FENCE.search(text)
    if match is None:
        raise ValueError(f"{page}: no embedded OpenAPI document")
    doc: Schema = yaml.safe_load(match.group(1))
    return doc


def _resolve(doc: Schema, node: Schema) -> tuple[Schema, str | None]:
    """Follows ``$ref`` chains; sibling keys override the target. Returns the name too."""
    name = None
    while "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            raise ValueError(f"external $ref {ref!r} is not supported")
        target: Any = doc
        for part in ref[2:].split("/"):
            target = target[part]
        name = ref.rsplit("/", 1)[-1]
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        node = {**target, **siblings}
    return node, name


def response_schema(page: str, method: str, path: str, status: int) -> tuple[Schema, Schema]:
    """The document and the response schema of ``method path`` for ``status`` on ``page``.

    Raises:
        KeyError: if the page has no such operation or status.
    """
    doc = _document(page)
    operation = doc["paths"][path][method.lower()]
    response, _ = _resolve(doc, operation["responses"][str(status)])
    content = response.get("content")
    if content is None and status >= 400:
        # Some pages list an error status without a body schema: Kalshi's ErrorResponse
        return doc, _ERROR_RESPONSE
    schema = content["application/json"]["schema"]
    return doc, schema


def problems(doc: Schema, schema: Schema, value: Any, where: str = "$") -> list[str]:
    """Every way ``value`` fails ``schema`` (empty when it conforms)."""
    node, name = _resolve(doc, schema)
    if value is None:
        return [] if node.get("nullable") else [f"{where}: null is not allowed"]
    found: list[str] = []
    for part in node.get("allOf", ()):
        found += problems(doc, part, value, where)
    for key in ("anyOf", "oneOf"):
        options = node.get(key)
        if options and all(problems(doc, o, value, where) for o in options):
            found.append(f"{where}: matches none of {key}")
    kind = node.get("type")
    if kind is not None and not _is_type(kind, value):
        return [*found, f"{where}: expected {kind}, got {type(value).__name__} {value!r}"]
    found += _scalar_problems(node, name, value, where)
    if isinstance(value, list):
        found += _array_problems(doc, node, value, where)
    if isinstance(value, dict):
        found += _object_problems(doc, node, value, where)
    return found


def _is_type(kind: str, value: Any) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    expected = {"string": str, "boolean": bool, "array": list, "object": dict}[kind]
    return isinstance(value, expected)


def _scalar_problems(node: Schema, name: str | None, value: Any, where: str) -> list[str]:
    found = []
    if "enum" in node and value not in node["enum"]:
        found.append(f"{where}: {value!r} is not one of {node['enum']}")
    if isinstance(value, str):
        pattern = _NAMED_FORMATS.get(name or "")
        if pattern is not None and not pattern.fullmatch(value):
            found.append(f"{where}: {value!r} is not a {name} response string")
        if node.get("format") == "date-time" and not _is_datetime(value):
            found.append(f"{where}: {value!r} is not an RFC 3339 date-time")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in node and value < node["minimum"]:
            found.append(f"{where}: {value} is below the minimum {node['minimum']}")
        if "maximum" in node and value > node["maximum"]:
            found.append(f"{where}: {value} is above the maximum {node['maximum']}")
    return found


def _is_datetime(text: str) -> bool:
    if "T" not in text:
        return False
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _array_problems(doc: Schema, node: Schema, value: list[Any], where: str) -> list[str]:
    found = []
    if "minItems" in node and len(value) < node["minItems"]:
        found.append(f"{where}: fewer than {node['minItems']} items")
    if "maxItems" in node and len(value) > node["maxItems"]:
        found.append(f"{where}: more than {node['maxItems']} items")
    items = node.get("items")
    if items is not None:
        for i, item in enumerate(value):
            found += problems(doc, items, item, f"{where}[{i}]")
    return found


def _object_problems(doc: Schema, node: Schema, value: dict[str, Any], where: str) -> list[str]:
    props: Schema = node.get("properties", {})
    found = [f"{where}: missing required {k!r}" for k in node.get("required", ()) if k not in value]
    extra = node.get("additionalProperties", True)
    for key, item in value.items():
        if key in props:
            found += problems(doc, props[key], item, f"{where}.{key}")
        elif extra is False:
            found.append(f"{where}: unknown field {key!r}")
        elif isinstance(extra, dict):
            found += problems(doc, extra, item, f"{where}.{key}")
    return found


def check(page: str, method: str, path: str, status: int, body: Any) -> None:
    """Asserts that ``body`` is a valid ``status`` response of ``method path`` per ``page``.

    Args:
        page: The page under ``tests/data/openapi`` without ``.md``, e.g. ``market/get-market``.
        method: The HTTP method.
        path: The OpenAPI path template, e.g. ``/markets/{ticker}``.
        status: The HTTP status the body came with.
        body: The decoded JSON body.

    Raises:
        AssertionError: listing every problem found.
    """
    doc, schema = response_schema(page, method, path, status)
    if status >= 400:
        assert isinstance(body, dict) and set(body) == {"error"}, f"not an error envelope: {body}"
        body = body["error"]
    found = problems(doc, schema, body)
    assert not found, f"{method} {path} {status} does not match {page}:\n" + "\n".join(found)
