"""Every default the docs state for a config key is the code's (``constants.DEFAULTS``).

A key's entry is a ``.. data:: AI_SSE_X`` block or a ``:data:`AI_SSE_X``` definition
term; the first "default ``value``" (or "default 12") in its indented text is compared.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from flask_ai_sse import constants

ROOT = Path(__file__).resolve().parent.parent
ENTRY = re.compile(r"^(?:\.\. data:: |:data:`)(AI_SSE_\w+)`?[ \t]*$", re.M)
DEFAULT = re.compile(r"\b[Dd]efault:? (?:``([^`]*)``|(-?\d[\d.]*)\b)")


def spellings(value: Any) -> set[str]:
    if isinstance(value, float) and value.is_integer():
        return {str(int(value)), str(value)}
    if isinstance(value, str):
        return {value, repr(value), f'"{value}"'}
    return {repr(value), repr(value).replace("'", '"')}


def stated_defaults() -> list[tuple[str, str, str]]:
    found = []
    for page in sorted((ROOT / "docs").glob("*.rst")):
        text = page.read_text()
        for entry in ENTRY.finditer(text):
            lines = []
            for line in text[entry.end() :].splitlines()[1:]:
                if line and not line[0].isspace():
                    break
                lines.append(line.strip())
            match = DEFAULT.search(" ".join(lines))
            if match is not None:
                found.append((page.name, entry.group(1), match.group(1) or match.group(2)))
    return found


def test_docs_state_defaults() -> None:
    assert len(stated_defaults()) > 40


@pytest.mark.parametrize(("page", "key", "stated"), stated_defaults())
def test_stated_default_is_the_codes(page: str, key: str, stated: str) -> None:
    assert stated in spellings(constants.DEFAULTS[key]), f"{page}: {key}"
