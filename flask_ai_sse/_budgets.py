"""Token budgets per client key (``AI_SSE_TOKEN_BUDGET = "200000/day"``). No Flask here.

The key is the rate limit's (``owner:<id>`` from ``@ai.authorize``, else
``addr:<ip>``). Windows are fixed and aligned to the epoch (a day is a UTC day).

* Before a stream: :meth:`Budgets.check` refuses a key whose window is spent
  (:class:`~flask_ai_sse.errors.BudgetExceeded`, a 429 with ``Retry-After``).
* While it runs: a :class:`BudgetMeter` (an engine observer) charges the
  estimated input at the start, then the output in batches of about
  :data:`BATCH_TOKENS` tokens (so a busy stream costs the store one call per
  batch, never one per token). A stream whose charge crosses the budget is
  aborted and ends with ``event: error`` of type ``budget_exceeded``; at the
  end, the stream's settled usage replaces the estimates, so the window holds
  what the provider reported (or the estimate when it reported nothing).

``memory`` counts per process. With Redis every worker and host shares one
count: ``INCRBY`` on a key per client key and window, atomic, expiring with the window.
"""

from __future__ import annotations

import abc
import logging
import re
import threading
import time
from typing import TYPE_CHECKING, Any

from ._usage import CHARS_PER_TOKEN, estimate_tokens
from .chunks import Chunk
from .errors import BudgetExceeded, ConfigurationError, StoreError

if TYPE_CHECKING:
    from .engine import Generation

__all__ = ["BudgetMeter", "Budgets", "MemoryBudgets", "RedisBudgets", "create_budgets"]

logger = logging.getLogger("flask_ai_sse")

#: A running stream is charged (and checked) about every this many output tokens.
BATCH_TOKENS = 200

_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800, "month": 2592000}
_SPEC = re.compile(r"^\s*(\d+)\s*(?:/|per)\s*(\d+)?\s*(second|minute|hour|day|week|month)s?\s*$")


def parse_budget(spec: str) -> tuple[int, int]:
    """``"200000/day"`` -> ``(200000, 86400)``; also ``"5000 per 6 hours"``. A month is 30 days."""
    match = _SPEC.match(str(spec).lower())
    if match is None or int(match.group(1)) < 1:
        raise ConfigurationError(
            f"AI_SSE_TOKEN_BUDGET must look like '200000/day' (tokens per second, minute,"
            f" hour, day, week or month), not {spec!r}."
        )
    return int(match.group(1)), int(match.group(2) or 1) * _UNITS[match.group(3)]


class Budgets(abc.ABC):
    """``limit`` tokens per ``window`` seconds for each key."""

    def __init__(self, limit: int, window: int) -> None:
        self.limit = limit
        self.window = window

    def _window(self, now: float) -> tuple[int, float]:
        """The current window's number and the seconds until the next one."""
        index = int(now // self.window)
        return index, (index + 1) * self.window - now

    def check(self, key: str) -> None:
        """Raise :class:`BudgetExceeded` (with ``retry_after``) when ``key`` spent its budget."""
        now = time.time()
        index, left = self._window(now)
        if self._used(key, index) >= self.limit:
            raise BudgetExceeded(
                f"The token budget of {self.limit} tokens is spent.", retry_after=max(1.0, left)
            )

    def charge(self, key: str, tokens: int) -> int:
        """Add ``tokens`` (may be negative: a correction) to ``key``; the window's new total."""
        index, left = self._window(time.time())
        return self._add(key, index, tokens, left)

    def exceeded(self) -> BudgetExceeded:
        """The error a running stream ends with when it crosses the budget."""
        _, left = self._window(time.time())
        return BudgetExceeded(
            f"The token budget of {self.limit} tokens is spent.", retry_after=max(1.0, left)
        )

    def used(self, key: str) -> int:
        """Tokens ``key`` used in the current window."""
        return self._used(key, self._window(time.time())[0])

    @abc.abstractmethod
    def _used(self, key: str, window: int) -> int: ...

    @abc.abstractmethod
    def _add(self, key: str, window: int, tokens: int, ttl: float) -> int: ...


class MemoryBudgets(Budgets):
    """Budgets of this process only: each worker counts for itself."""

    def __init__(self, limit: int, window: int) -> None:
        super().__init__(limit, window)
        self._counts: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def _used(self, key: str, window: int) -> int:
        index, used = self._counts.get(key, (window, 0))
        return used if index == window else 0

    def _add(self, key: str, window: int, tokens: int, ttl: float) -> int:
        with self._lock:
            total = self._used(key, window) + tokens
            self._counts[key] = (window, total)
            if len(self._counts) > 10000:  # drop keys of past windows
                self._counts = {k: v for k, v in self._counts.items() if v[0] == window}
            return total


class RedisBudgets(Budgets):
    """Budgets shared by every process using the same Redis (``redis://`` URL)."""

    prefix = "ai_sse:budget:"

    def __init__(self, url: str, limit: int, window: int) -> None:
        super().__init__(limit, window)
        try:
            import redis
        except ImportError:  # pragma: no cover - depends on the install
            raise ConfigurationError(
                "A redis:// URL for token budgets needs the 'redis' package:"
                " pip install 'flask-ai-sse[redis]'."
            ) from None
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._client: Any = redis.Redis.from_url(
            url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30
        )

    def _name(self, key: str, window: int) -> str:
        return f"{self.prefix}{self.window}:{window}:{key}"

    def _used(self, key: str, window: int) -> int:
        try:
            return int(self._client.get(self._name(key, window)) or 0)
        except self._errors as exc:
            raise StoreError("Redis failed while reading a token budget.") from exc

    def _add(self, key: str, window: int, tokens: int, ttl: float) -> int:
        name = self._name(key, window)
        try:
            with self._client.pipeline(transaction=True) as pipe:
                pipe.incrby(name, tokens)
                pipe.expire(name, int(ttl) + 60)
                total, _ = pipe.execute()
        except self._errors as exc:
            raise StoreError("Redis failed while charging a token budget.") from exc
        return int(total)

    def close(self) -> None:
        self._client.close()


def create_budgets(url: str, spec: str) -> Budgets:
    """The budgets ``spec`` sets, counted where ``url`` says (``memory`` or Redis)."""
    limit, window = parse_budget(spec)
    if url in ("memory", "memory://"):
        return MemoryBudgets(limit, window)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisBudgets(url, limit, window)
    raise ConfigurationError(
        f"AI_SSE_TOKEN_BUDGET_STORAGE must be 'memory' or a redis:// URL, not {url!r}."
    )


class BudgetMeter:
    """Charges one generation to ``key`` as it runs and stops it past the budget."""

    def __init__(self, budgets: Budgets, key: str, *, prompt_estimate: int) -> None:
        self.budgets = budgets
        self.key = key
        self.prompt_estimate = prompt_estimate
        self.charged = 0
        self._chars = 0
        # a small budget is checked more often, so a stream overshoots it by little
        self._batch_chars = min(BATCH_TOKENS, max(16, budgets.limit // 20)) * CHARS_PER_TOKEN

    def _charge(self, generation: Generation, tokens: int) -> None:
        try:
            total = self.budgets.charge(self.key, tokens)
        except StoreError:  # the end's correction catches up; the stream goes on
            logger.warning("could not charge a token budget", exc_info=True)
            return
        self.charged += tokens
        if total >= self.budgets.limit and generation.status == "streaming":
            generation.abort("budget", self.budgets.exceeded())

    def started(self, generation: Generation) -> None:
        self._charge(generation, self.prompt_estimate)

    def chunk(self, generation: Generation, chunk: Chunk) -> None:
        self._chars += len(chunk.text)
        if self._chars >= self._batch_chars:
            tokens, self._chars = estimate_tokens(self._chars), 0
            self._charge(generation, tokens)

    def finished(self, generation: Generation) -> None:
        usage = generation.usage
        if usage is None:
            return
        correction = int(usage["total_tokens"]) - self.charged
        if correction:
            try:
                self.budgets.charge(self.key, correction)
            except StoreError:
                logger.warning("could not charge a token budget", exc_info=True)
