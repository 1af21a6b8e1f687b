"""Tool schemas from type hints and docstrings (pure: no app, no network)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NotRequired, Optional, TypedDict

import pytest

from flask_ai_sse._tools import ToolRegistry, json_schema, make_tool, parse_docstring, schema_of
from flask_ai_sse.errors import ConfigurationError


@pytest.mark.parametrize(
    ("hint", "schema"),
    [
        (str, {"type": "string"}),
        (int, {"type": "integer"}),
        (float, {"type": "number"}),
        (bool, {"type": "boolean"}),
        (None, {"type": "null"}),
        (type(None), {"type": "null"}),
        (list[int], {"type": "array", "items": {"type": "integer"}}),
        (list, {"type": "array"}),
        (tuple[str, ...], {"type": "array", "items": {"type": "string"}}),
        (dict, {"type": "object"}),
        (dict[str, float], {"type": "object", "additionalProperties": {"type": "number"}}),
        (Literal["a", "b"], {"type": "string", "enum": ["a", "b"]}),
        (Literal[1, 2], {"type": "integer", "enum": [1, 2]}),
        (Literal["a", 1], {"enum": ["a", 1]}),
        (Optional[str], {"type": ["string", "null"]}),  # noqa: UP045 - the spelling under test
        (int | None, {"type": ["integer", "null"]}),
        (Literal["x"] | None, {"type": ["string", "null"], "enum": ["x", None]}),
        (int | str, {"anyOf": [{"type": "integer"}, {"type": "string"}]}),
        (
            list[int] | None,
            {"anyOf": [{"type": "array", "items": {"type": "integer"}}, {"type": "null"}]},
        ),
        (Any, {}),
    ],
)
def test_hint_schemas(hint, schema):
    assert json_schema(hint) == schema


class Address(TypedDict):
    """A postal address.

    Args:
        city: The city.
        zip: Its postal code.
    """

    city: str
    zip: NotRequired[str]


@dataclass
class Item:
    """A line of an order.

    Args:
        sku: Stock keeping unit.
        quantity: How many.
    """

    sku: str
    quantity: int = 1
    tags: list[str] = field(default_factory=list)


def test_typeddict_schema():
    assert json_schema(Address) == {
        "type": "object",
        "description": "A postal address.",
        "properties": {
            "city": {"type": "string", "description": "The city."},
            "zip": {"type": "string", "description": "Its postal code."},
        },
        "required": ["city"],
        "additionalProperties": False,
    }


def test_dataclass_schema_nested_in_a_list():
    schema = json_schema(list[Item])
    assert schema["type"] == "array"
    item = schema["items"]
    assert item["required"] == ["sku"]
    assert item["properties"]["sku"] == {"type": "string", "description": "Stock keeping unit."}
    assert item["properties"]["tags"] == {"type": "array", "items": {"type": "string"}}
    assert item["description"] == "A line of an order."


def test_undocumented_dataclass_has_no_signature_as_description():
    @dataclass
    class Point:
        x: float
        y: float

    assert "description" not in json_schema(Point)


def test_function_schema_google_docstring():
    def get_order(
        order_id: str, include_items: bool = False, unit: Literal["eur", "usd"] = "eur"
    ) -> dict:
        """Look up an order by its number.

        Used by the support desk.

        Args:
            order_id: The order's number,
                e.g. "A-1001".
            include_items: Whether to list the lines.

        Returns:
            The order.
        """
        return {}

    description, params = schema_of(get_order)
    assert description == "Look up an order by its number.\n\nUsed by the support desk."
    assert params == {
        "type": "object",
        "properties": {
            "order_id": {"type": "string", "description": 'The order\'s number, e.g. "A-1001".'},
            "include_items": {
                "type": "boolean",
                "description": "Whether to list the lines.",
                "default": False,
            },
            "unit": {"type": "string", "enum": ["eur", "usd"], "default": "eur"},
        },
        "required": ["order_id"],
        "additionalProperties": False,
    }


def test_sphinx_and_numpy_docstrings():
    def a(x: int, y: str) -> None:
        """Do a.

        :param x: the x
            value.
        :param str y: the y.
        :returns: nothing.
        """

    def b(x: int, y: str) -> None:
        """Do b.

        Parameters
        ----------
        x : int
            The x.
        y : str
            The y.

        Returns
        -------
        None
        """

    assert parse_docstring(a.__doc__) == ("Do a.", {"x": "the x value.", "y": "the y."})
    assert parse_docstring(b.__doc__) == ("Do b.", {"x": "The x.", "y": "The y."})


def test_optional_and_typeddict_parameters():
    def ship(to: Address, items: list[Item], note: str | None = None) -> str:
        """Ship items."""
        return ""

    _, params = schema_of(ship)
    assert params["required"] == ["to", "items"]
    assert params["properties"]["note"] == {"type": ["string", "null"], "default": None}
    assert params["properties"]["to"]["properties"]["city"]["type"] == "string"


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: x,  # no hint
    ],
)
def test_unhinted_parameter_is_refused(fn):
    with pytest.raises(ConfigurationError, match="needs a type hint"):
        make_tool(fn, name="f")


class Thing:
    pass


def test_unsupported_hints_are_refused_at_registration():
    def f(x: Thing) -> None: ...

    def g(*args: int) -> None: ...

    def h(x: dict[int, str]) -> None: ...

    for fn, message in ((f, "no JSON Schema"), (g, r"\*args"), (h, "string keys")):
        with pytest.raises(ConfigurationError, match=message):
            make_tool(fn)


def test_explicit_schema_and_names():
    schema = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}

    def search(**kwargs: Any) -> list[str]:
        """Search the knowledge base."""
        return []

    tool = make_tool(search, name="kb_search", schema=schema)
    assert (tool.name, tool.description, tool.parameters) == (
        "kb_search",
        "Search the knowledge base.",
        schema,
    )
    with pytest.raises(ConfigurationError, match="must be an object"):
        make_tool(search, schema={"type": "string"})
    with pytest.raises(ConfigurationError, match="Tool name"):
        make_tool(search, name="has space")


def test_registry_decorator_and_resolve():
    registry = ToolRegistry()

    @registry.decorator
    def now() -> str:
        """The time."""
        return "noon"

    @registry.decorator(name="add_numbers", description="Add two numbers.")
    def add(a: int, b: int) -> int:
        return a + b

    assert now() == "noon" and add(1, 2) == 3  # the functions stay as they were
    client = {
        "name": "pick_color",
        "description": "Let the user pick.",
        "parameters": {"type": "object", "properties": {}},
    }

    def extra(n: int) -> int:
        return n

    tools = registry.resolve(["now", add, client, extra])
    assert [t.name for t in tools] == ["now", "add_numbers", "pick_color", "extra"]
    assert tools[1].description == "Add two numbers."
    assert tools[2].function is None and tools[0].function is now
    with pytest.raises(ConfigurationError, match="No tool named"):
        registry.resolve(["missing"])
    with pytest.raises(ConfigurationError, match="given twice"):
        registry.resolve(["now", now])
    with pytest.raises(ConfigurationError, match="already registered"):
        registry.decorator(name="now")(lambda: None)
