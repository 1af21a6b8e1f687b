"""Property tests for ``flask_ai_sse.sse``: round trips and arbitrary bytes.

Kept small enough for CI (a few seconds in all).
"""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from flask_ai_sse.sse import Comment, ServerSentEvent, SSEDecoder, encode

FAST = settings(max_examples=150, deadline=None)

Item = ServerSentEvent | Comment


def cut(raw: bytes, positions: list[int]) -> list[bytes]:
    """``raw`` split at ``positions`` (any ints; taken modulo its length + 1)."""
    points = sorted({p % (len(raw) + 1) for p in positions})
    return [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]


def decode(chunks: list[bytes], *, comments: bool = False) -> list[Item]:
    decoder = SSEDecoder(comments=comments)
    items = [item for chunk in chunks for item in decoder.feed(chunk)]
    return items + decoder.close()


def reference_decode(raw: bytes) -> tuple[list[ServerSentEvent], str, int | None]:
    """The WHATWG algorithm, transcribed step by step (slow and plain on purpose)."""
    text = raw.decode("utf-8", errors="replace").removeprefix("\ufeff")
    events: list[ServerSentEvent] = []
    data, event_type, id_buffer, last_id, retry = "", "", None, None, None
    i = 0
    while True:
        # Collect one line; a line without an end of line is discarded (end of stream).
        end = i
        while end < len(text) and text[end] not in "\r\n":
            end += 1
        if end == len(text):
            break
        line = text[i:end]
        i = end + (2 if text[end : end + 2] == "\r\n" else 1)
        if line == "":
            last_id = id_buffer
            if data == "":
                event_type = ""
                continue
            if data.endswith("\n"):
                data = data[:-1]
            events.append(ServerSentEvent(data=data, event=event_type or "message", id=id_buffer))
            data, event_type = "", ""
            continue
        if line.startswith(":"):
            continue
        if ":" in line:
            field, value = line.split(":", 1)
            if value.startswith(" "):
                value = value[1:]
        else:
            field, value = line, ""
        if field == "event":
            event_type = value
        elif field == "data":
            data += value + "\n"
        elif field == "id":
            if "\0" not in value:
                id_buffer = value
        elif field == "retry" and value and all(c in "0123456789" for c in value):
            retry = int(value)
    return events, last_id or "", retry


# Text with the characters that matter to the framing, plus anything else.
text = st.lists(
    st.sampled_from(["\r", "\n", "\r\n", ":", " ", "\0", "\ufeff", "\u2028", "😀", "é"])
    | st.characters(codec="utf-8"),  # no lone surrogates: text has no UTF-8 form for them
    max_size=20,
).map("".join)
single_line = text.map(lambda s: re.sub(r"[\r\n]", "", s))
event_id = single_line.map(lambda s: s.replace("\0", ""))
splits = st.lists(st.integers(min_value=0), max_size=8)


@FAST
@given(data=text, event=st.none() | single_line, id=st.none() | event_id, positions=splits)
def test_encode_then_decode_round_trips(
    data: str, event: str | None, id: str | None, positions: list[int]
) -> None:
    raw = encode(data, event=event, id=id)
    expected = ServerSentEvent(data=re.sub(r"\r\n?", "\n", data), event=event or "message", id=id)
    assert decode(cut(raw, positions)) == [expected]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=())),  # lone surrogates too
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=10,
)


@FAST
@given(value=json_values, positions=splits)
def test_json_data_round_trips_on_one_line(value: Any, positions: list[int]) -> None:
    value = {"content": value}  # as the default protocol sends it
    raw = encode(value)
    assert raw.count(b"\n") == 2  # one data line, one blank line
    (event,) = decode(cut(raw, positions))
    assert isinstance(event, ServerSentEvent)
    assert event.json() == json.loads(json.dumps(value))


@FAST
@given(
    events=st.lists(
        st.tuples(text, st.none() | single_line, st.none() | event_id),
        max_size=5,
    ),
    comment=text,
    positions=splits,
)
def test_a_stream_of_events_and_comments_round_trips(
    events: list[tuple[str, str | None, str | None]], comment: str, positions: list[int]
) -> None:
    raw = b"".join(encode(data, event=event, id=id) for data, event, id in events)
    raw = encode(comment=comment) + raw + encode(comment=comment)
    decoded = decode(cut(raw, positions))
    last_id: str | None = None
    expected = []
    for data, event, id in events:
        last_id = id if id is not None else last_id
        normalized = re.sub(r"\r\n?", "\n", data)
        expected.append(ServerSentEvent(data=normalized, event=event or "message", id=last_id))
    assert decoded == expected
    comments = [item for item in decode([raw], comments=True) if isinstance(item, Comment)]
    assert [c.text for c in comments] == 2 * re.split(r"\r\n|\r|\n", comment)


# Byte soup built from the pieces of the format, so that the interesting paths get hit.
tokens = st.sampled_from(
    [
        b"data",
        b"event",
        b"id",
        b"retry",
        b"data: ",
        b"event: ",
        b"id: ",
        b"retry: ",
        b":",
        b" ",
        b"\r",
        b"\n",
        b"\r\n",
        b"\0",
        b"\xef\xbb\xbf",
        b"12",
        b"x",
        "😀".encode(),
        b"\xf0\x9f",
        b"\xff",
    ]
)
byte_soup = st.lists(tokens | st.binary(max_size=4), max_size=30).map(b"".join)


@settings(max_examples=400, deadline=None)
@given(raw=byte_soup, positions=splits)
def test_decoder_matches_the_whatwg_algorithm(raw: bytes, positions: list[int]) -> None:
    expected, last_event_id, retry = reference_decode(raw)
    decoder = SSEDecoder()
    items = [item for chunk in cut(raw, positions) for item in decoder.feed(chunk)]
    items += decoder.close()
    assert items == expected
    assert (decoder.last_event_id, decoder.retry) == (last_event_id, retry)


@FAST
@given(raw=st.binary(max_size=200), positions=splits)
def test_decoder_never_crashes_and_ignores_chunking(raw: bytes, positions: list[int]) -> None:
    whole = decode([raw], comments=True)
    assert decode(cut(raw, positions), comments=True) == whole
    assert decode([raw[i : i + 1] for i in range(len(raw))], comments=True) == whole
    for item in whole:
        assert "\r" not in (item.data if isinstance(item, ServerSentEvent) else item.text)
