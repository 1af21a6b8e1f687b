"""Point 7: arbitrary route inputs never give a 500, a malformed stream or a crash.

Fast runs through the Flask test client, a smaller one against gunicorn. (The SSE
encoder/decoder round trip is fuzzed in tests/test_sse_fuzz.py.)
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .framing import assert_well_formed
from .sse_client import call

FIELDS = ["prompt", "messages", "system", "model", "temperature", "max_tokens", "conversation_id"]
FAST = settings(max_examples=150, deadline=None)
SLOW = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant", "system", "tool", ""]) | json_values},
        optional={"content": st.text(max_size=30) | json_values},
    ),
    max_size=4,
)
bodies = (
    st.fixed_dictionaries(
        {},
        optional={
            **{name: json_values for name in FIELDS},
            "prompt": st.text(max_size=60) | json_values,
            "messages": messages | json_values,
            "temperature": st.floats(-1, 3) | json_values,
            "max_tokens": st.integers(-5, 10**7) | json_values,
        },
    )
    | json_values
)
raw_bodies = st.binary(max_size=200) | bodies.map(lambda b: json.dumps(b).encode())
queries = st.dictionaries(
    st.sampled_from([*FIELDS, "last_event_id", "x"]) | st.text(max_size=5),
    st.text(max_size=30) | st.integers().map(str) | st.floats().map(str),
    max_size=5,
)
#: Anything a header value may hold (no CR, LF or NUL: HTTP itself forbids them).
header_text = st.text(
    st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f"), max_size=60
)
last_event_ids = header_text | st.builds(
    lambda a, b: f"{a}:{b}", header_text, st.integers(-5, 10**15)
)


def check(status: int, content_type: str, body: bytes, *, stream: bool) -> None:
    """The one property: a JSON 4xx error, or a whole well-formed answer; never a 5xx."""
    assert status < 500, body[:300]
    if status >= 400:
        assert content_type.startswith("application/json")
        error = json.loads(body)["error"]
        assert isinstance(error["type"], str) and isinstance(error["message"], str)
    elif stream:
        assert content_type == "text/event-stream; charset=utf-8"
        assert_well_formed(body)
    else:
        assert isinstance(json.loads(body)["text"], str)


@pytest.fixture(scope="module")
def client(make_app):
    return make_app(AI_SSE_KEEPALIVE=5, AI_SSE_MAX_MESSAGES=3).test_client()


@FAST
@given(body=raw_bodies, route=st.sampled_from(["/ai/stream", "/ai/ask"]))
def test_json_bodies(client, body, route):
    resp = client.post(route, data=body, content_type="application/json")
    check(resp.status_code, resp.content_type, resp.get_data(), stream=route == "/ai/stream")


@FAST
@given(body=st.binary(max_size=50), content_type=header_text)
def test_bodies_of_any_content_type(client, body, content_type):
    resp = client.post("/ai/stream", data=body, headers={"Content-Type": content_type})
    check(resp.status_code, resp.content_type, resp.get_data(), stream=True)


@FAST
@given(query=queries, last_event_id=st.none() | last_event_ids)
def test_query_strings_and_last_event_ids(client, query, last_event_id):
    headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
    resp = client.get("/ai/stream", query_string=query, headers=headers)
    check(resp.status_code, resp.content_type, resp.get_data(), stream=True)


@FAST
# A "/" in the id routes nowhere: Flask's own 404 page, before any route of ours runs.
@given(
    stream_id=st.text(
        st.characters(exclude_characters="/", exclude_categories=["Cs"]), min_size=1, max_size=40
    ),
    last_event_id=st.none() | last_event_ids,
)
def test_attach_and_cancel_with_junk_ids(client, stream_id, last_event_id):
    headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
    path = "/ai/streams/" + quote(stream_id, safe="")
    for resp in (client.get(path, headers=headers), client.post(path + "/cancel")):
        assert resp.status_code in (404, 405) or resp.status_code < 400
        check(resp.status_code, resp.content_type, resp.get_data(), stream=True)


@pytest.fixture(scope="module")
def server(module_gunicorn):
    return module_gunicorn({"AI_SSE_FAKE_DELAY": 0.0, "AI_SSE_MAX_MESSAGES": 3})


@pytest.mark.server
@SLOW
@given(body=raw_bodies, query=queries, last_event_id=last_event_ids)
def test_the_same_against_gunicorn(server, body, query, last_event_id):
    url = f"{server.url}/ai/stream"
    # HTTP drops a value's surrounding white space (requests refuses to send it, \x85 too).
    headers = {"Content-Type": "application/json", "Last-Event-ID": last_event_id.strip()}
    post = call("POST", url, data=body, headers={"Content-Type": "application/json"})
    check(post.status_code, post.headers["Content-Type"], post.content, stream=True)
    get = call("GET", url, params=query, headers=headers)
    check(get.status_code, get.headers["Content-Type"], get.content, stream=True)
