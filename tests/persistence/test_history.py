"""History trimming: system prompt and newest turns kept, within the budget."""

from __future__ import annotations

from typing import Any

import pytest

from flask_ai_sse.persistence import HistoryBudget, approx_tokens, trim_history


def m(role: str, content: str) -> Any:
    return {"role": role, "content": content}


SYSTEM = m("system", "Be brief.")
HISTORY = [SYSTEM, m("user", "u1"), m("assistant", "a1"), m("user", "u2"), m("assistant", "a2")]
NEW = [m("user", "u3")]


@pytest.mark.parametrize(
    ("budget", "kept"),
    [
        (HistoryBudget(), ["u1", "a1", "u2", "a2"]),
        (HistoryBudget(max_messages=2), ["u2", "a2"]),
        # one message fits: a lone assistant reply would open the history, so it goes too
        (HistoryBudget(max_messages=1), []),
        (HistoryBudget(max_messages=3), ["u2", "a2"]),
        # characters count everything sent: 9 (system) + 2 (new) + 2 per kept message
        (HistoryBudget(max_chars=9 + 2 + 4), ["u2", "a2"]),
        (HistoryBudget(max_chars=9 + 2 + 5), ["u2", "a2"]),
        (HistoryBudget(max_chars=1), []),
        # tokens: 3 (system) + 1 (new) + 1 per kept message
        (HistoryBudget(max_tokens=3 + 1 + 2), ["u2", "a2"]),
        # a1, u2, a2 fit, but a1 would open the history: it goes
        (HistoryBudget(max_messages=10, max_chars=9 + 2 + 6, max_tokens=100), ["u2", "a2"]),
    ],
)
def test_the_newest_turns_that_fit_are_kept(budget: HistoryBudget, kept: list[str]) -> None:
    sent = trim_history(HISTORY, NEW, budget)
    assert sent[0] == SYSTEM, "the system prompt is always sent"
    assert sent[-1] == NEW[0], "the new turn is always sent"
    assert [x["content"] for x in sent[1:-1]] == kept


def test_system_messages_and_new_turn_survive_an_impossible_budget() -> None:
    assert trim_history(HISTORY, NEW, HistoryBudget(max_chars=1, max_tokens=1)) == [SYSTEM, *NEW]


def test_no_history() -> None:
    assert trim_history([], NEW, HistoryBudget(max_messages=5)) == NEW


@pytest.mark.parametrize(("text", "tokens"), [("", 0), ("a", 1), ("abcd", 1), ("abcde", 2)])
def test_approx_tokens(text: str, tokens: int) -> None:
    assert approx_tokens(text) == tokens
