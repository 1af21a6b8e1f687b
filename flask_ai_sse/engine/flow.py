"""Flow control helpers for the producer."""

from __future__ import annotations

import re

# The end of a sentence: terminal punctuation (and closing quotes or brackets) followed by
# white space, or a line break.
_SENTENCE_END = re.compile(r"[.!?\u2026\u3002\uff01\uff1f][\"'\u201d\u2019)\]]*\s+|\n")


class SentenceBuffer:
    """Holds text back until a sentence is complete (``AI_SSE_SENTENCE_MODE``)."""

    def __init__(self) -> None:
        self._pending = ""

    def push(self, text: str) -> str:
        """Add text; return the complete sentences it finishes (maybe ``""``)."""
        pending = self._pending + text
        end = 0
        for match in _SENTENCE_END.finditer(pending):
            end = match.end()
        self._pending = pending[end:]
        return pending[:end]

    def flush(self) -> str:
        """The rest, sentence or not (at the end of the stream)."""
        rest, self._pending = self._pending, ""
        return rest
