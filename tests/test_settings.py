"""Every ``AI_SSE_*`` key is read once, checked, and a bad value names its key."""

from __future__ import annotations

import pytest

from flask_ai_sse import AISSE, ConfigurationError
from flask_ai_sse import constants as C
from flask_ai_sse._settings import read_settings


@pytest.mark.parametrize(
    ("key", "value", "accepts"),
    [
        (C.KEEPALIVE, 0, "greater than 0"),
        (C.KEEPALIVE, "15", "a number"),
        (C.RETRY, -1, "at least 0"),
        (C.STREAM_TTL, True, "a number"),
        (C.STREAM_MAX_EVENTS, 0, "at least 1"),
        (C.DISCONNECT_POLICY, "wait", "cancel, finish"),
        (C.SENTENCE_MODE, "yes", "True or False"),
        (C.POOL_SIZE, 0, "at least 1"),
        (C.CONNECT_TIMEOUT, 0, "greater than 0"),
        (C.PROVIDER_OPTIONS, [], "a dict"),
        (C.FALLBACKS, "anthropic", "a list of dicts"),
        (C.URL_PREFIX, "", "a non-empty string"),
        (C.MAX_PROMPT_CHARS, 0, "at least 1"),
        (C.MAX_STREAMS_PER_KEY, 0, "at least 1 or None"),
        (C.PERSIST_EVERY, 1.5, "an integer"),
        (C.REGISTER_BLUEPRINT, None, "True or False"),
    ],
)
def test_a_bad_value_names_its_key_and_what_it_accepts(key, value, accepts, make_app):
    with pytest.raises(ConfigurationError, match=f"{key} must be.*{accepts}"):
        make_app(**{key: value})


def test_defaults_come_from_one_table_and_are_written_back():
    config: dict[str, object] = {}
    settings = read_settings(config, {})
    assert config == C.DEFAULTS
    assert settings.provider.pool_size == C.DEFAULTS[C.POOL_SIZE]
    assert settings.store.ttl == C.DEFAULTS[C.STREAM_TTL]
    assert settings.persistence.history_max_messages == C.DEFAULTS[C.HISTORY_MAX_MESSAGES]


def test_precedence_is_argument_then_config_then_default(make_app):
    ai = AISSE(model="from-argument")
    app = make_app(ai, **{C.MODEL: "from-config", C.URL_PREFIX: "/cfg"})
    with app.app_context():
        assert ai.provider.model == "from-argument"
    assert app.config[C.MODEL] == "from-argument"
    assert app.config[C.URL_PREFIX] == "/cfg"
    assert app.config[C.KEEPALIVE] == C.DEFAULTS[C.KEEPALIVE]


def test_ai_provider_names_who_answers(make_app):
    ai = AISSE()
    app = make_app(ai)
    with app.app_context():
        assert (ai.provider.name, ai.provider.model) == ("fake", "fake-1")
