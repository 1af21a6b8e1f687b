"""Tools: Python functions a model may call, described by JSON Schema. No Flask here.

A function's schema comes from its type hints and its docstring::

    def get_order(order_id: str, include_items: bool = False) -> dict:
        \"\"\"Look up an order.

        Args:
            order_id: The order's number, e.g. "A-1001".
            include_items: Whether to list the order's lines.
        \"\"\"

gives ``{"type": "object", "properties": {"order_id": {"type": "string", "description":
...}, ...}, "required": ["order_id"]}`` and the description "Look up an order.".
Supported hints: ``str``, ``int``, ``float``, ``bool``, ``None``, ``list[X]``,
``dict[str, X]``, ``Literal[...]``, ``Optional[X]``/``X | None``, unions,
``TypedDict`` and dataclasses (nested too). Anything else is refused at
registration, when the author can still fix it, rather than at a model's call.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Union

from ._parts import TOOL_NAME
from .chunks import ToolSpec
from .errors import ConfigurationError


def _markers() -> list[Any]:
    modules: list[Any] = [typing]
    try:
        import typing_extensions

        modules.append(typing_extensions)
    except ImportError:  # pragma: no cover
        pass
    return modules


ToolFunction = Callable[..., Any]
#: What ``tools=`` accepts: registered names, functions, :class:`Tool` objects, or
#: ``{"name", "description", "parameters"}`` dicts (tools the client runs).
ToolLike = Union[str, ToolFunction, "Tool", Mapping[str, Any]]

_PRIMITIVES: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    type(None): {"type": "null"},
    None: {"type": "null"},
    Any: {},
}
#: ``NotRequired``/``Required`` (Python 3.11+, or typing_extensions) where they exist.
_OPTIONAL_KEY = {getattr(m, "NotRequired", None) for m in _markers()} - {None}
_REQUIRED_KEY = {getattr(m, "Required", None) for m in _markers()} - {None}
_SECTION = re.compile(r"^(Args|Arguments|Parameters|Params)\s*:?\s*$", re.IGNORECASE)
_OTHER_SECTION = re.compile(
    r"^(Returns?|Yields?|Raises?|Examples?|Notes?|See Also|Attributes?)\s*:?\s*$", re.IGNORECASE
)
_GOOGLE_ARG = re.compile(r"^(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")
_SPHINX_ARG = re.compile(r"^:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")
_NUMPY_RULE = re.compile(r"^-{3,}\s*$")


@dataclass(frozen=True)
class Tool:
    """A tool: its name, description and parameters' schema, and the function (if any).

    A tool without a function is a *client* tool: the model may call it, and the
    stream ends with ``finish_reason`` ``tool_calls`` for the client to run it.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    function: ToolFunction | None = None

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec(self.name, self.description, self.parameters)


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """The description (text before the first section) and per-argument text.

    Understands Google (``Args:``), Sphinx (``:param x:``) and NumPy
    (``Parameters`` over dashes) styles; continuation lines are joined.
    """
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    description: list[str] = []
    args: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    indent = 0
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if _NUMPY_RULE.match(nxt) and stripped:  # a NumPy section heading
            section = "numpy" if _SECTION.match(stripped) else "other"
            current = None
            i += 2
            continue
        if _SECTION.match(stripped):
            section, current = "args", None
        elif _OTHER_SECTION.match(stripped):
            section, current = "other", None
        elif sphinx := _SPHINX_ARG.match(stripped):
            section = "sphinx"
            current = sphinx.group(1)
            args[current] = sphinx.group(2).strip()
        elif stripped.startswith(":"):
            section, current = "other", None
        elif section is None:
            description.append(line)
        elif section == "args" and stripped:
            width = len(line) - len(line.lstrip())
            match = _GOOGLE_ARG.match(stripped)
            if match and (current is None or width <= indent):
                current, indent = match.group(1).lstrip("*"), width
                args[current] = match.group(3).strip()
            elif current is not None:
                args[current] = f"{args[current]} {stripped}".strip()
        elif section == "numpy" and stripped:
            if line == line.lstrip():  # "name : type" at the margin starts an argument
                current = stripped.split(":")[0].strip().lstrip("*")
                args[current] = ""
            elif current is not None:
                args[current] = f"{args[current]} {stripped}".strip()
        elif section == "sphinx" and stripped and current is not None:
            args[current] = f"{args[current]} {stripped}".strip()
        i += 1
    text = "\n".join(description).strip()
    return re.sub(r"\s*\n\s*\n\s*", "\n\n", text), {k: v for k, v in args.items() if v}


def json_schema(hint: Any, *, owner: str = "") -> dict[str, Any]:
    """The JSON Schema of one type hint; ``ConfigurationError`` for a hint it cannot express."""
    if hint in _PRIMITIVES:
        return dict(_PRIMITIVES[hint])
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Annotated:
        return json_schema(args[0], owner=owner)
    if origin is Literal:
        values = list(args)
        schema: dict[str, Any] = {"enum": values}
        kinds = {type(v) for v in values}
        if len(kinds) == 1 and (kind := kinds.pop()) in (str, int, float, bool):
            schema = {"type": _PRIMITIVES[kind]["type"], "enum": values}
        return schema
    if origin in (Union, types.UnionType):
        options = [json_schema(a, owner=owner) for a in args]
        if len(options) == 2 and {"type": "null"} in options:
            other = next(o for o in options if o != {"type": "null"})
            if isinstance(other.get("type"), str) and set(other) <= {"type", "enum"}:
                merged = {**other, "type": [other["type"], "null"]}
                if "enum" in merged:
                    merged["enum"] = [*merged["enum"], None]
                return merged
        return {"anyOf": options}
    if hint in (list, tuple, set, frozenset) or origin in (list, set, frozenset, Sequence):
        return (
            {"type": "array", "items": json_schema(args[0], owner=owner)}
            if args
            else {"type": "array"}
        )
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": json_schema(args[0], owner=owner)}
        items = [json_schema(a, owner=owner) for a in args]
        return {
            "type": "array",
            "prefixItems": items,
            "minItems": len(items),
            "maxItems": len(items),
        }
    if hint is dict or origin in (dict, Mapping):
        if args and args[0] is not str:
            raise ConfigurationError(f"{owner}: JSON objects have string keys, not {args[0]!r}.")
        value_schema = json_schema(args[1], owner=owner) if args else {}
        if not value_schema:
            return {"type": "object"}
        return {"type": "object", "additionalProperties": value_schema}
    if isinstance(hint, type) and typing.is_typeddict(hint):
        # With postponed annotations, __required_keys__ misses NotRequired: look at the hints.
        hints = typing.get_type_hints(hint, include_extras=True)
        required_keys = set(getattr(hint, "__required_keys__", hints))
        fields: dict[str, Any] = {}
        for key, value in hints.items():
            marker = typing.get_origin(value)
            if marker is not None and marker in _OPTIONAL_KEY:
                required_keys.discard(key)
                value = typing.get_args(value)[0]
            elif marker is not None and marker in _REQUIRED_KEY:
                required_keys.add(key)
                value = typing.get_args(value)[0]
            fields[key] = json_schema(value, owner=owner)
        return _object(hint, fields, [k for k in hints if k in required_keys])
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        props: dict[str, Any] = {}
        required = []
        for f in dataclasses.fields(hint):
            props[f.name] = json_schema(hints[f.name], owner=owner)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                required.append(f.name)
        return _object(hint, props, required)
    raise ConfigurationError(f"{owner}: no JSON Schema for the type {hint!r}.")


def _object(cls: type, props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    description, arg_docs = parse_docstring(cls.__doc__ if cls.__doc__ else None)
    for name, text in arg_docs.items():
        if name in props:
            props[name]["description"] = text
    schema: dict[str, Any] = {"type": "object", "properties": props, "required": required}
    # A dataclass's generated __doc__ is its signature: not a description.
    if description and not description.startswith(f"{cls.__name__}("):
        schema["description"] = description
    schema["additionalProperties"] = False
    return schema


def schema_of(fn: ToolFunction) -> tuple[str, dict[str, Any]]:
    """``(description, parameters schema)`` of a function, from its hints and docstring."""
    name = getattr(fn, "__name__", repr(fn))
    description, arg_docs = parse_docstring(fn.__doc__)
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:  # a hint naming something not importable at runtime
        raise ConfigurationError(f"{name}: its type hints cannot be resolved ({exc}).") from exc
    props: dict[str, Any] = {}
    required: list[str] = []
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ConfigurationError(f"{name}: *args and **kwargs cannot be described to a model.")
        if param.name not in hints:
            raise ConfigurationError(f"{name}: parameter {param.name!r} needs a type hint.")
        schema = json_schema(hints[param.name], owner=name)
        if param.name in arg_docs:
            schema["description"] = arg_docs[param.name]
        if param.default is param.empty:
            required.append(param.name)
        elif param.default is None or isinstance(param.default, str | int | float | bool):
            schema["default"] = param.default
        props[param.name] = schema
    parameters = {
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": False,
    }
    return description, parameters


def make_tool(
    fn: ToolFunction | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    schema: Mapping[str, Any] | None = None,
) -> Tool:
    """A :class:`Tool` from a function (schema derived unless given) or from a schema alone."""
    tool_name = name or getattr(fn, "__name__", None)
    if not isinstance(tool_name, str) or not TOOL_NAME.fullmatch(tool_name):
        raise ConfigurationError(
            f"Tool name {tool_name!r} must be 1-64 letters, digits, '_' or '-' (not first)."
        )
    derived_description = ""
    if schema is not None:
        parameters = dict(schema)
        if fn is not None and description is None:
            derived_description = parse_docstring(fn.__doc__)[0]
    elif fn is not None:
        derived_description, parameters = schema_of(fn)
    else:
        parameters = {"type": "object", "properties": {}}
    if parameters.get("type") != "object":
        raise ConfigurationError(f"Tool {tool_name!r}: its parameters schema must be an object.")
    return Tool(tool_name, description or derived_description, parameters, fn)


class ToolRegistry:
    """The tools an extension knows by name (``@ai.tool``)."""

    def __init__(self) -> None:
        self.tools: dict[str, Tool] = {}

    def register(self, tool: Tool | Mapping[str, Any]) -> Tool:
        """Add a tool; a ``{"name", "description", "parameters"}`` dict is a *client*
        tool, which :data:`AI_SSE_TOOLS` may then offer on the routes (``useChat``'s
        client-side tools)."""
        if isinstance(tool, Mapping):
            tool = self._one(tool)
        known = self.tools.get(tool.name)
        if known is not None and known.function is not tool.function:
            raise ConfigurationError(f"A tool named {tool.name!r} is already registered.")
        self.tools[tool.name] = tool
        return tool

    def decorator(
        self,
        fn: ToolFunction | None = None,
        *,
        name: str | None = None,
        description: str | None = None,
        schema: Mapping[str, Any] | None = None,
    ) -> Any:
        """``@registry.decorator`` or ``@registry.decorator(name=..., ...)``; returns ``fn``."""

        def register(function: ToolFunction) -> ToolFunction:
            self.register(make_tool(function, name=name, description=description, schema=schema))
            return function

        return register(fn) if fn is not None else register

    def resolve(self, tools: Iterable[ToolLike]) -> list[Tool]:
        """``tools=`` as :class:`Tool` objects: names looked up, functions and dicts built."""
        out: dict[str, Tool] = {}
        for item in tools:
            tool = self._one(item)
            if tool.name in out:
                raise ConfigurationError(f"The tool {tool.name!r} is given twice.")
            out[tool.name] = tool
        return list(out.values())

    def _one(self, item: ToolLike) -> Tool:
        if isinstance(item, Tool):
            return item
        if isinstance(item, str):
            if item not in self.tools:
                raise ConfigurationError(f"No tool named {item!r} is registered.")
            return self.tools[item]
        if isinstance(item, Mapping):
            if "name" not in item:
                raise ConfigurationError("A tool given as a dict needs a 'name'.")
            return make_tool(
                name=item["name"],
                description=item.get("description") or "",
                schema=item.get("parameters") or {"type": "object", "properties": {}},
            )
        if callable(item):
            for tool in self.tools.values():
                if tool.function is item:
                    return tool
            return make_tool(item)
        raise ConfigurationError(f"Not a tool: {item!r}.")
