"""History as context: which earlier messages go upstream. Pure code, no database.

A budget caps the earlier messages by count, and what is sent (system prompt,
kept history, the new turn) by characters and approximate tokens. System
messages and the new turn are always sent; the oldest other messages go first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..chunks import Message, text_of
from .replay import pair_tool_calls, units

#: Characters per token for the estimate: about right for English with the common
#: tokenizers, and deliberately not a tokenizer (no model-specific dependency).
CHARS_PER_TOKEN = 4


def approx_tokens(text: str) -> int:
    """A rough token count (``len / 4``, rounded up), enough to stay under a context window."""
    return -(-len(text) // CHARS_PER_TOKEN)


@dataclass(frozen=True)
class HistoryBudget:
    """Limits on the context; 0 means no limit."""

    max_messages: int = 0
    max_chars: int = 0
    max_tokens: int = 0

    def fits(self, count: int, chars: int, tokens: int) -> bool:
        return (
            (not self.max_messages or count <= self.max_messages)
            and (not self.max_chars or chars <= self.max_chars)
            and (not self.max_tokens or tokens <= self.max_tokens)
        )


def trim_history(
    history: Sequence[Message], new: Sequence[Message], budget: HistoryBudget
) -> list[Message]:
    """The messages to send: system messages, the newest earlier turns that fit, ``new``.

    ``max_messages`` counts the earlier non-system messages kept; characters and
    tokens count everything sent. Kept history never starts with an assistant
    message, which several APIs refuse, and never separates a tool call from its
    results.
    """
    system = [m for m in history if m["role"] == "system"]
    others = [m for m in history if m["role"] != "system"]
    fixed = [*system, *new]
    chars = sum(len(text_of(m["content"])) for m in fixed)
    tokens = sum(approx_tokens(text_of(m["content"])) for m in fixed)
    kept: list[list[Message]] = []
    count = 0
    # A tool call and its results are one unit: kept or dropped together.
    for unit in reversed(units(others)):
        size = sum(len(text_of(m["content"])) for m in unit)
        cost = sum(approx_tokens(text_of(m["content"])) for m in unit)
        if not budget.fits(count + len(unit), chars + size, tokens + cost):
            break
        kept.append(unit)
        count += len(unit)
        chars += size
        tokens += cost
    kept.reverse()
    while kept and kept[0][0]["role"] in ("assistant", "tool"):
        kept.pop(0)
    return pair_tool_calls([*system, *(m for unit in kept for m in unit), *new])
