"""Usage and cost, pure: the estimate, settling the provider's figures, the price table."""

from __future__ import annotations

import pytest

from flask_ai_sse._budgets import MemoryBudgets, parse_budget
from flask_ai_sse._usage import Price, cost, estimate_request, estimate_tokens, parse_prices, settle
from flask_ai_sse.chunks import ChatRequest, Usage
from flask_ai_sse.errors import BudgetExceeded, ConfigurationError


def test_the_estimate_is_four_characters_a_token_rounded_up():
    assert [estimate_tokens(n) for n in (0, 1, 4, 5, 400)] == [0, 1, 1, 2, 100]
    request = ChatRequest(
        messages=[
            {"role": "user", "content": "x" * 40},
            {"role": "user", "content": [{"type": "text", "text": "y" * 8}, {"type": "image"}]},
        ],
        model="m",
        system="s" * 4,
    )
    assert estimate_request(request) == 10 + 2 + 1 + 3 * 4  # text, then per-message overhead


def test_the_providers_figures_win_and_an_estimate_is_marked():
    reported = Usage(12, 30, 42)
    assert settle(reported, prompt_estimate=99, output_chars=999) == {
        "prompt_tokens": 12,
        "completion_tokens": 30,
        "total_tokens": 42,
        "estimated": False,
    }
    assert settle(None, prompt_estimate=7, output_chars=20) == {
        "prompt_tokens": 7,
        "completion_tokens": 5,
        "total_tokens": 12,
        "estimated": True,
    }
    # input reported first (Anthropic), the stream cut before the output figure: mixed
    partial = settle(Usage(50, 0, 50), prompt_estimate=7, output_chars=8)
    assert partial == {
        "prompt_tokens": 50,
        "completion_tokens": 2,
        "total_tokens": 52,
        "estimated": True,
    }


def test_cost_from_the_price_table_by_exact_name_then_longest_prefix():
    prices = parse_prices(
        {
            "gpt-4o": {"input": 2.5, "output": 10, "cached_input": 1.25},
            "gpt-4o-mini": {"input": 0.15, "output": 0.6},
        }
    )
    usage = {"prompt_tokens": 1000, "completion_tokens": 2000}
    assert cost(usage, "gpt-4o", prices) == pytest.approx(0.0225)
    assert cost(usage, "gpt-4o-mini-2024-07-18", prices) == pytest.approx(0.00135)
    cached = {**usage, "cached_tokens": 1000}
    assert cost(cached, "gpt-4o-2024-08-06", prices) == pytest.approx(0.02125)
    assert cost(usage, "claude", prices) is None
    assert cost(None, "gpt-4o", prices) is None
    assert prices["gpt-4o-mini"] == Price(0.15, 0.6)


@pytest.mark.parametrize(
    "table",
    [
        {"m": {"input": 1}},
        {"m": {"input": 1, "output": "x"}},
        {"m": {"input": 1, "output": -1}},
        {"m": {"input": 1, "output": 1, "cache": 1}},
        {"m": 3},
    ],
)
def test_a_bad_price_table_is_refused_at_start_up(table):
    with pytest.raises(ConfigurationError):
        parse_prices(table)


def test_budget_specs():
    assert parse_budget("200000/day") == (200000, 86400)
    assert parse_budget("5000 per 6 hours") == (5000, 21600)
    assert parse_budget("10/month") == (10, 2592000)
    for bad in ("lots", "0/day", "10/fortnight", "-5/day"):
        with pytest.raises(ConfigurationError):
            parse_budget(bad)


def test_memory_budget_counts_within_a_window_and_refuses_with_retry_after():
    budgets = MemoryBudgets(100, 3600)
    budgets.check("k")
    assert budgets.charge("k", 60) == 60
    assert budgets.charge("k", 50) == 110
    with pytest.raises(BudgetExceeded) as info:
        budgets.check("k")
    assert 1 <= info.value.retry_after <= 3600
    assert info.value.headers["Retry-After"].isdigit()
    budgets.check("other")
    assert budgets.charge("k", -20) == 90  # a correction: the settled usage was lower
    budgets.check("k")
