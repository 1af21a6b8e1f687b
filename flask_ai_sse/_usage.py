"""What a stream used and what it cost: pure functions, no Flask, no I/O.

Every ending reports usage. When the provider sent its own figures they are
used as they are; when it sent none (a cancelled, disconnected, timed-out or
failed stream usually ends before the provider's usage chunk) the figures are
estimated from the text sent and received and marked ``"estimated": true``.
The estimate is deliberately simple (about four characters per token, the
usual figure for English with BPE tokenizers): it bounds spending and fills
dashboards; it is not an invoice.

Cost comes from a price table the app supplies (``AI_SSE_PRICES``): per model,
US dollars (or any currency) per million tokens of input, output and cached input.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .chunks import ChatRequest, Usage
from .errors import ConfigurationError

__all__ = [
    "CHARS_PER_TOKEN",
    "Price",
    "cost",
    "estimate_request",
    "estimate_tokens",
    "parse_prices",
    "settle",
]

#: Characters per token of the estimate.
CHARS_PER_TOKEN = 4
#: Tokens a chat format adds per message (role markers, separators).
MESSAGE_OVERHEAD = 4


def estimate_tokens(chars: int) -> int:
    """Tokens for ``chars`` characters of text: rounded up, so a non-empty text costs one."""
    return -(-chars // CHARS_PER_TOKEN) if chars > 0 else 0


def _content_chars(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):  # parts: only text parts are counted, images are not text
        return sum(
            len(part.get("text") or "")
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return 0


def estimate_request(request: ChatRequest) -> int:
    """The input tokens of ``request``, estimated from its system prompt and messages."""
    chars = len(request.system or "")
    overhead = MESSAGE_OVERHEAD if request.system else 0
    for message in request.messages:
        chars += _content_chars(message.get("content"))
        overhead += MESSAGE_OVERHEAD
    return estimate_tokens(chars) + overhead


def settle(reported: Usage | None, *, prompt_estimate: int, output_chars: int) -> dict[str, Any]:
    """The usage to report at a stream's end: the provider's, else an estimate.

    A provider may report input tokens only (Anthropic sends them first): the
    missing output figure is then estimated and the whole marked estimated.
    """
    if reported is not None and (reported.completion_tokens or not output_chars):
        return {**reported.to_dict(), "estimated": False}
    prompt = reported.prompt_tokens if reported is not None and reported.prompt_tokens else None
    completion = estimate_tokens(output_chars)
    prompt = prompt_estimate if prompt is None else prompt
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "estimated": True,
    }


@dataclass(frozen=True)
class Price:
    """Prices per million tokens; ``cached_input`` defaults to ``input``."""

    input: float
    output: float
    cached_input: float | None = None


def parse_prices(table: Mapping[str, Any] | None) -> dict[str, Price]:
    """``AI_SSE_PRICES`` checked at start-up: ``{model: {"input": x, "output": y, ...}}``."""
    prices: dict[str, Price] = {}
    for model, entry in (table or {}).items():
        if not isinstance(entry, Mapping) or not {"input", "output"} <= set(entry):
            raise ConfigurationError(
                f"AI_SSE_PRICES[{model!r}] must be a mapping with 'input' and 'output'"
                " prices per million tokens."
            )
        unknown = set(entry) - {"input", "output", "cached_input"}
        if unknown:
            raise ConfigurationError(
                f"AI_SSE_PRICES[{model!r}] has unknown keys: {', '.join(sorted(unknown))}."
            )
        try:
            values = {key: float(value) for key, value in entry.items()}
        except (TypeError, ValueError):
            raise ConfigurationError(f"AI_SSE_PRICES[{model!r}] prices must be numbers.") from None
        if any(v < 0 or not math.isfinite(v) for v in values.values()):
            raise ConfigurationError(f"AI_SSE_PRICES[{model!r}] prices must be >= 0.")
        prices[str(model)] = Price(**values)
    return prices


def cost(usage: Mapping[str, Any] | None, model: str, prices: Mapping[str, Price]) -> float | None:
    """The cost of ``usage`` for ``model``; ``None`` when the table has no price for it.

    A model is looked up by its exact name, then by the longest table key it
    starts with (``gpt-4o`` prices ``gpt-4o-2024-08-06``).
    """
    if usage is None or not prices:
        return None
    price = prices.get(model) or _longest_prefix(model, prices)
    if price is None:
        return None
    cached = int(usage.get("cached_tokens") or 0)
    prompt = max(0, int(usage.get("prompt_tokens") or 0) - cached)
    completion = int(usage.get("completion_tokens") or 0)
    cached_price = price.input if price.cached_input is None else price.cached_input
    total = prompt * price.input + cached * cached_price + completion * price.output
    return round(total / 1_000_000, 8)


def _longest_prefix(model: str, prices: Mapping[str, Price]) -> Price | None:
    matches: Iterable[str] = (key for key in prices if model.startswith(key))
    best = max(matches, key=len, default=None)
    return None if best is None else prices[best]
