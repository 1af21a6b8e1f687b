"""What a well-formed event stream of this library looks like, line by line."""

from __future__ import annotations

import re

from flask_ai_sse.testing import StreamResult, collect

#: The only lines the encoder writes: fields with a value, comments, blank separators.
_LINE = re.compile(r"retry: [0-9]+|event: [^\r\n:]*|id: [^\r\n]*|data: [^\r\n]*|:[^\r\n]*")


def assert_well_formed(body: bytes) -> StreamResult:
    """Every line is one the encoder writes, no CR anywhere, and the stream ended once."""
    assert b"\r" not in body
    text = body.decode("utf-8")
    assert text.endswith("\n\n")
    for block in text[:-2].split("\n\n"):
        for line in block.split("\n"):
            assert _LINE.fullmatch(line), f"unexpected line {line!r}"
    result = collect(body)
    assert result.ended
    terminals = [e for e in result.events if e.event in ("done", "error")]
    assert len(terminals) <= 1
    return result
