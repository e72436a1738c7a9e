"""The compact outputSchemas of tools/list (db_migrate.tools.schema): structure kept, prose and repetition gone."""

from __future__ import annotations

import json
from typing import Literal

import jsonschema
import pytest
from pydantic import BaseModel, Field, TypeAdapter

from db_migrate.tools import TOOLS, result_model
from db_migrate.tools.schema import compact_input_schema, compact_schema, documented_schemas, output_schema


class Leaf(BaseModel):
    """A leaf."""

    value: int = Field(description="a number")


class Item(BaseModel):
    title: str = Field(description="a field that is named like a keyword")
    description: str | None = None
    mode: Literal["a", "b"] | None = None
    leaf: Leaf | None = None


class Top(BaseModel):
    first: Item
    others: list[Item] = Field(default_factory=list, description="the same model again")
    leaf: Leaf | None = None


class Holder(BaseModel):
    leaf: Leaf


def _schema(model: type[BaseModel]) -> dict:
    return TypeAdapter(model).json_schema(mode="serialization")


def test_prose_goes_field_names_stay_nullable_unions_fold() -> None:
    out = compact_schema(_schema(Top), depth=3)
    text = json.dumps(out)
    assert "a number" not in text and "the same model again" not in text and '"Top"' not in text  # descriptions, titles
    item = out["$defs"]["Item"]  # Item is used twice: defined once, referred to twice
    assert text.count('"#/$defs/Item"') == 2 and set(item["properties"]) == {"title", "description", "mode", "leaf"}
    assert item["properties"]["description"] == {"type": ["string", "null"]}
    assert item["properties"]["mode"] == {"enum": ["a", "b", None]}
    # Leaf is used by Top and by Item: defined once too; a $ref branch stays a union with null
    assert out["properties"]["leaf"] == {"anyOf": [{"$ref": "#/$defs/Leaf"}, {"type": "null"}]}
    assert out["$defs"]["Leaf"] == {"properties": {"value": {"type": "integer"}}, "required": ["value"], "type": "object"}
    once = compact_schema(_schema(Holder))
    assert "$defs" not in once and once["properties"]["leaf"]["properties"] == {"value": {"type": "integer"}}  # used once: inline


def test_deep_objects_are_summarised_unless_kept() -> None:
    shallow = compact_schema(_schema(Top), depth=1)
    assert shallow["properties"]["first"] == {"type": "object"} and "$defs" not in shallow
    kept = compact_schema(_schema(Top), depth=1, keep=frozenset({"Item"}))
    assert kept["$defs"]["Item"]["properties"]["leaf"] == {"type": ["object", "null"]}  # Item's own nested Leaf stays summarised


@pytest.mark.parametrize("depth", [0, 1, 2, 5])
def test_the_compact_schema_accepts_what_the_model_dumps(depth: int) -> None:
    full = Top(first=Item(title="t", mode="a", leaf=Leaf(value=1)), others=[Item(title="u")], leaf=None)
    jsonschema.validate(full.model_dump(mode="json"), compact_schema(_schema(Top), depth=depth))
    with pytest.raises(jsonschema.ValidationError):  # structure is still checked where it is described
        jsonschema.validate({"first": {"title": 3}}, compact_schema(_schema(Top), depth=2))


def test_every_tool_schema_is_small_self_contained_and_each_model_once() -> None:
    for tool in TOOLS:
        schema = output_schema(tool)
        jsonschema.Draft202012Validator.check_schema(schema)
        text = json.dumps(schema)
        assert len(text) < 3_000, (tool, len(text))
        assert all(ref.startswith("#/$defs/") for ref in _refs(schema))  # no reference a client could not resolve
        assert {"decision", "summary", "findings", "escalation", "unchecked"} <= set(schema["properties"])
        assert "fix" in json.dumps(schema["properties"]["findings"])


def test_documented_schemas_share_definitions_and_keep_descriptions() -> None:
    docs = documented_schemas()
    assert set(docs["tools"]) == set(TOOLS)
    assert docs["$defs"]["Finding"]["properties"]["rule"]["description"]
    assert docs["tools"]["review_migration"] == {"$ref": "#/$defs/ReviewResult"}
    assert "$defs" in docs and result_model("check_heads").__name__ in docs["$defs"]


def test_input_schemas_keep_descriptions_and_defaults_but_not_titles() -> None:
    schema = {"properties": {"rows": {"title": "Rows", "type": "integer", "default": 20, "description": "Rows to seed."},
                             "url": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None, "title": "Url"}},
              "title": "Args", "type": "object"}
    assert compact_input_schema(schema) == {
        "properties": {"rows": {"type": "integer", "default": 20, "description": "Rows to seed."},
                       "url": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}},
        "type": "object",
    }


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []
