"""Every config key is named once (constants.py) and documented (``.. data::`` in docs/)."""

from __future__ import annotations

import re
from pathlib import Path

from flask_ai_sse import constants

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_every_config_key_is_documented():
    documented = set()
    for page in DOCS.glob("*.rst"):
        documented |= set(re.findall(r"^\.\. data:: (AI_SSE_\w+)", page.read_text(), re.M))
    keys = set(constants.DEFAULTS)
    assert keys - documented == set(), "undocumented config keys"
    assert documented - keys == set(), "documented keys that do not exist"


def test_key_names_are_declared_once():
    names = [v for k, v in vars(constants).items() if k.isupper() and isinstance(v, str)]
    keys = [n for n in names if n.startswith("AI_SSE_")]
    assert len(keys) == len(set(keys))
    assert set(keys) == set(constants.DEFAULTS)


def documented_defaults() -> dict[str, str | None]:
    """Each key's default as its ``.. data::`` entry states it: the literal after
    ``Default``, or before ``(default)``; ``None`` when it is said in words."""
    found: dict[str, str | None] = {}
    for page in DOCS.glob("*.rst"):
        for key, block in re.findall(
            r"^\.\. data:: (AI_SSE_\w+)\n((?:\n|    .*\n)*)", page.read_text(), re.M
        ):
            flat = " ".join(block.split())
            literal = re.search(r"Default:? ``(.*?)``", flat) or re.search(
                r"``([^`]*)`` \(default\)", flat
            )
            found[key] = literal.group(1) if literal else None
    return found


def as_documented(value: object) -> str:
    """How a default is written in the docs: ``15`` for 15.0, strings bare, tuples as code."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, tuple):
        return "(" + ", ".join(f'"{v}"' for v in value) + (",)" if len(value) == 1 else ")")
    return str(value)


def test_every_documented_default_is_the_codes():
    documented = documented_defaults()
    for key, default in constants.DEFAULTS.items():
        stated = documented[key]
        if stated is None:  # said in words ("the provider's public URL"): no literal to differ
            assert default is None, f"{key}: the docs give no default literal for {default!r}"
            continue
        expected = {as_documented(default), repr(default), f'"{default}"'}
        assert stated in expected, f"{key}: documented {stated!r}, the code says {default!r}"
