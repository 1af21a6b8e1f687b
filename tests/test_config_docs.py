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
