"""Compact JSON schemas for the MCP tools' ``outputSchema`` (and titles out of their ``inputSchema``).

An agent pays for ``tools/list`` in its context on every session, and pydantic's
schema of a verdict is mostly prose and repetition: every field's description,
title and default, and each nested model (Finding, Escalation, Preflight...) in
full, in each of the five tools.  The prose lives in the README, the tool
descriptions and the resources (``db-migrate://schema`` has the documented
schemas, every model defined once for all tools), so the advertised schema keeps
structure only: a result's field names, types, enums and what is required; what
an agent acts on (findings, the escalation and its triggers, what was not
checked) in full; other nested objects as ``{"type": "object"}``; and a model
used twice in one result once, in ``$defs``.

Each schema stays self-contained: clients (the Python SDK with jsonschema, the
TypeScript one with Ajv) compile every tool's schema on its own, so a reference
shared across tools would not resolve.  The schema is generated in pydantic's
*serialization* mode, the shape of ``model_dump(mode="json")``, which is exactly
the structured content a tool returns; :func:`compact_schema` never tightens a
constraint, so whatever pydantic's own schema accepts, the compact one accepts too.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from functools import cache
from typing import Any

#: Annotation keywords (JSON Schema's own "meta-data" vocabulary): no validation depends on them.
_PROSE = frozenset({"title", "description", "default", "examples"})
#: Keywords whose value is a map from names to schemas (the names are data, not keywords).
_NAMED_SCHEMAS = frozenset({"properties", "$defs", "patternProperties"})
_DEFS = "#/$defs/"
#: How deep an outputSchema describes nested objects: a result's fields, and the fields of each item.
OUTPUT_DEPTH = 1
#: Models written out wherever they occur: what an agent acts on (an escalation's triggers).
ALWAYS_DESCRIBED = frozenset({"Finding", "Escalation", "Trigger", "Unchecked"})


def compact_schema(schema: dict[str, Any], *, depth: int = 2, keep: frozenset[str] = frozenset()) -> dict[str, Any]:
    """``schema`` without prose, nullable unions folded, nested detail summarised, each model once.

    A pure function of a JSON schema as pydantic writes one (models in ``$defs``):

    - annotation keywords (title, description, default, examples) are dropped;
    - ``anyOf: [X, null]`` becomes X allowing null;
    - an object nested ``depth`` levels down is written as ``{"type": "object"}``
      (its fields are documented in the ``db-migrate://schema`` resource), except
      the models named in ``keep``, which are always written out;
    - a model used once is written inline, one used more often once in ``$defs``.

    Nothing is tightened: every instance the input accepts, the result accepts.
    """
    defs = {name: _strip(d) for name, d in (schema.get("$defs") or {}).items()}
    root = _strip({k: v for k, v in schema.items() if k != "$defs"})

    def expanded(name: str, level: int) -> bool:
        return name in keep or level < depth

    # the shallowest level each expanded model is reached at: popped in order of level, the first visit is the minimum
    levels: dict[str, int] = {}
    queue: list[tuple[int, int, Any]] = [(0, 0, root)]
    order = 0
    while queue:
        level, _, node = heapq.heappop(queue)
        for ref, at in _refs(node, level):
            if expanded(ref, at) and ref not in levels:
                levels[ref] = at
                order += 1
                heapq.heappush(queue, (at, order, defs[ref]))

    def emit(node: Any, level: int) -> Any:
        if isinstance(node, list):
            return [emit(v, level) for v in node]
        if not isinstance(node, dict):
            return node
        ref = _ref_name(node)
        if ref is not None:
            return node if ref in levels and expanded(ref, level) else {"type": "object"}
        if "properties" in node and level >= depth:
            return {"type": "object"}
        return _fold_nullable({
            k: ({n: emit(s, level + 1) for n, s in v.items()} if k in _NAMED_SCHEMAS and isinstance(v, dict) else emit(v, level))
            for k, v in node.items()
        })

    out = emit(root, 0)
    # a kept model reached deep down still shows its own fields (their nested objects stay summarised)
    bodies = {name: emit(defs[name], min(level, depth - 1) if name in keep else level) for name, level in levels.items()}
    uses: dict[str, int] = {}
    for node in (out, *bodies.values()):
        _count_refs(node, uses)
    inline = {name for name in bodies if uses.get(name, 0) == 1}

    def inlined(node: Any) -> Any:
        if isinstance(node, list):
            return [inlined(v) for v in node]
        if not isinstance(node, dict):
            return node
        ref = _ref_name(node)
        if ref in inline:
            return inlined(bodies[ref])
        return {k: inlined(v) for k, v in node.items()}

    out = inlined(out)
    shared = {name: inlined(body) for name, body in bodies.items() if name not in inline and uses.get(name, 0) > 1}
    if shared:
        out["$defs"] = shared
    return out


def _ref_name(node: dict[str, Any]) -> str | None:
    ref = node.get("$ref")
    return ref[len(_DEFS):] if isinstance(ref, str) and ref.startswith(_DEFS) and len(node) == 1 else None


def _refs(node: Any, level: int) -> Iterator[tuple[str, int]]:
    """Every model ``node`` references, with the level it is referenced at (one more inside each ``properties``)."""
    if isinstance(node, list):
        for v in node:
            yield from _refs(v, level)
    elif isinstance(node, dict):
        ref = _ref_name(node)
        if ref is not None:
            yield ref, level
            return
        for k, v in node.items():
            if k in _NAMED_SCHEMAS and isinstance(v, dict):
                for s in v.values():
                    yield from _refs(s, level + 1)
            else:
                yield from _refs(v, level)


def _strip(node: Any, drop: frozenset[str] = _PROSE, fold: bool = True) -> Any:
    """Drop the ``drop`` keywords; with ``fold``, ``anyOf: [X, null]`` becomes X allowing null and an ``enum`` loses its ``type``."""
    if isinstance(node, list):
        return [_strip(v, drop, fold) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in drop:
            continue
        if key in _NAMED_SCHEMAS and isinstance(value, dict):
            out[key] = {name: _strip(s, drop, fold) for name, s in value.items()}
        else:
            out[key] = _strip(value, drop, fold)
    if not fold:
        return out
    out = _fold_nullable(out)
    if isinstance(out.get("enum"), list) and "type" in out:
        del out["type"]  # the enum already names every value, null included
    return out


def compact_input_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A tool's ``inputSchema`` without titles.

    Descriptions and defaults stay (they tell an agent what to pass), and so does
    pydantic's spelling of optional arguments, which every client's model takes.
    """
    return _strip(schema, frozenset({"title"}), fold=False)


def _fold_nullable(node: dict[str, Any]) -> dict[str, Any]:
    """``{"anyOf": [{"type": "string"}, {"type": "null"}]}`` -> ``{"type": ["string", "null"]}``.

    Only when the other branch has a single ``type`` it can extend, or is an
    ``enum`` (extended by null): a ``$ref`` or ``const`` branch stays a union.
    """
    branches = node.get("anyOf")
    if not isinstance(branches, list) or len(branches) != 2 or len(node) != 1 or {"type": "null"} not in branches:
        return node
    other = dict(next(b for b in branches if b != {"type": "null"}))
    if "const" in other or "$ref" in other:
        return node
    if isinstance(other.get("enum"), list):
        other["enum"] = [*other["enum"], None]
        other.pop("type", None)
        return other
    if not isinstance(other.get("type"), str):
        return node
    other["type"] = [other["type"], "null"]
    return other


def _count_refs(node: Any, uses: dict[str, int]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_DEFS):
            uses[ref[len(_DEFS):]] = uses.get(ref[len(_DEFS):], 0) + 1
        for value in node.values():
            _count_refs(value, uses)
    elif isinstance(node, list):
        for value in node:
            _count_refs(value, uses)


@cache
def output_schema(tool: str) -> dict[str, Any]:
    """The compact ``outputSchema`` of ``tool``: its result model's serialized shape (see the module docstring)."""
    from pydantic import TypeAdapter

    from db_migrate.tools import result_model

    full = TypeAdapter(result_model(tool)).json_schema(mode="serialization")
    return compact_schema(_root_inline(full), depth=OUTPUT_DEPTH, keep=ALWAYS_DESCRIBED)


def _root_inline(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema whose root is a bare ``$ref`` gets that definition as its root (an outputSchema needs ``type: object``)."""
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith(_DEFS):
        return {**schema["$defs"][ref[len(_DEFS):]], **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def documented_schemas() -> dict[str, Any]:
    """Every tool's result schema with its descriptions, the models they share defined once (``$defs``).

    ``{"tools": {tool: schema}, "$defs": {...}}``: what the compact outputSchemas leave out.
    """
    from pydantic.json_schema import models_json_schema

    from db_migrate.tools import TOOLS, result_model

    keys, defs = models_json_schema([(result_model(t), "serialization") for t in TOOLS], ref_template="#/$defs/{model}")
    return {"tools": {t: keys[(result_model(t), "serialization")] for t in TOOLS}, **defs}
