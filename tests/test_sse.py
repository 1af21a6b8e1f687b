"""The SSE wire format, byte for byte: ``flask_ai_sse.sse``.

Every decoder input is fed whole, split in two at every byte position, and one
byte at a time; all of these must give the same events.
"""

from __future__ import annotations

import doctest
import json
from collections.abc import Iterator

import pytest

from flask_ai_sse import sse
from flask_ai_sse.sse import (
    DONE,
    Comment,
    ServerSentEvent,
    SSEDecoder,
    encode,
    encode_comment,
    iter_events,
    json_dumps,
)

Item = ServerSentEvent | Comment


def E(data: str, event: str = "message", id: str | None = None) -> ServerSentEvent:
    """An event as the decoder returns it."""
    return ServerSentEvent(data=data, event=event, id=id)


def splits(raw: bytes) -> Iterator[list[bytes]]:
    """``raw`` whole, in two pieces at every byte position, and byte by byte."""
    yield [raw]
    for i in range(len(raw) + 1):
        yield [raw[:i], raw[i:]]
    yield [raw[i : i + 1] for i in range(len(raw))]


def decode(chunks: list[bytes], *, comments: bool = False) -> tuple[list[Item], SSEDecoder]:
    decoder = SSEDecoder(comments=comments)
    items = [item for chunk in chunks for item in decoder.feed(chunk)]
    items += decoder.close()
    return items, decoder


def assert_decodes(raw: bytes, expected: list[Item], *, comments: bool = False) -> SSEDecoder:
    """Check every way of splitting ``raw`` gives ``expected``; return the whole-feed decoder."""
    whole, decoder = decode([raw], comments=comments)
    assert whole == expected
    for chunks in splits(raw):
        items, split_decoder = decode(chunks, comments=comments)
        assert items == expected, chunks
        assert split_decoder.last_event_id == decoder.last_event_id, chunks
        assert split_decoder.retry == decoder.retry, chunks
    return decoder


# --- decoder ----------------------------------------------------------------

DECODE_CASES = [
    pytest.param(b"data: a\n\n", [E("a")], id="lf"),
    pytest.param(b"data: a\r\n\r\n", [E("a")], id="crlf"),
    pytest.param(b"data: a\r\r", [E("a")], id="cr"),
    pytest.param(b"data: a\rdata: b\ndata: c\r\n\r\n", [E("a\nb\nc")], id="mixed-line-ends"),
    pytest.param(b"data: a\r\n\rdata: b\n\r\n", [E("a"), E("b")], id="mixed-blank-lines"),
    pytest.param(b"data: a\ndata: b\n\n", [E("a\nb")], id="multi-line-data-joined-with-lf"),
    pytest.param(b"data: a\ndata:\n\n", [E("a\n")], id="empty-last-data-line-kept"),
    pytest.param(b"data\n\n", [E("")], id="data-without-colon-is-empty-data"),
    pytest.param(b"data\ndata\n\n", [E("\n")], id="two-empty-data-lines"),
    pytest.param(b"data:\n\n", [E("")], id="data-colon-nothing"),
    pytest.param(b"data: \n\n", [E("")], id="data-colon-space"),
    pytest.param(b"data:  a\n\n", [E(" a")], id="only-one-space-removed"),
    pytest.param(b"data:a\n\n", [E("a")], id="no-space-after-colon"),
    pytest.param(b"data:\ta\n\n", [E("\ta")], id="tab-is-not-a-space"),
    pytest.param(b"data: a: b\n\n", [E("a: b")], id="colon-in-value"),
    pytest.param(b"data: a \n\n", [E("a ")], id="trailing-space-kept"),
    pytest.param(b"data: a\x00b\n\n", [E("a\x00b")], id="nul-in-data-kept"),
    pytest.param(b"Data: a\n\nDATA: b\n\n", [], id="field-names-case-sensitive"),
    pytest.param(b"data : a\n\n", [], id="space-before-colon-is-another-field"),
    pytest.param(b"foo: bar\ndata: a\n\n", [E("a")], id="unknown-field-ignored"),
    pytest.param(b": comment\ndata: a\n: another\n\n", [E("a")], id="comments-ignored"),
    pytest.param(b": keepalive\n\n", [], id="comment-alone-dispatches-nothing"),
    pytest.param(b":\n\n", [], id="bare-colon-comment"),
    pytest.param(b"\n\n\ndata: a\n\n\n\n", [E("a")], id="extra-blank-lines"),
    pytest.param(b"", [], id="empty-stream"),
    # event type
    pytest.param(b"event: x\ndata: a\n\n", [E("a", "x")], id="named-event"),
    pytest.param(b"event: x\ndata: a\n\ndata: b\n\n", [E("a", "x"), E("b")], id="type-reset"),
    pytest.param(b"event: x\n\ndata: a\n\n", [E("a")], id="type-reset-without-data"),
    pytest.param(b"event: x\nevent: y\ndata: a\n\n", [E("a", "y")], id="last-event-field-wins"),
    pytest.param(b"event\ndata: a\n\n", [E("a")], id="empty-event-is-message"),
    pytest.param(b"event:  x\ndata: a\n\n", [E("a", " x")], id="event-one-space-removed"),
    # empty data buffer: no event
    pytest.param(b"event: x\n\n", [], id="no-data-no-event"),
    pytest.param(b"id: 1\nevent: x\nretry: 5\n\n", [], id="fields-without-data"),
    # id and lastEventId
    pytest.param(b"id: 1\ndata: a\n\n", [E("a", id="1")], id="id"),
    pytest.param(b"data: a\nid: 1\n\n", [E("a", id="1")], id="id-after-data"),
    pytest.param(
        b"id: 1\ndata: a\n\ndata: b\n\n", [E("a", id="1"), E("b", id="1")], id="id-persists"
    ),
    pytest.param(
        b"id: 1\ndata: a\n\nid\ndata: b\n\n", [E("a", id="1"), E("b", id="")], id="empty-id-resets"
    ),
    pytest.param(
        b"id: 1\ndata: a\n\nid: 2\x00\ndata: b\n\n",
        [E("a", id="1"), E("b", id="1")],
        id="id-with-nul-ignored",
    ),
    pytest.param(b"id: 7\n\ndata: a\n\n", [E("a", id="7")], id="id-set-by-event-without-data"),
    pytest.param(b"id:  7\ndata: a\n\n", [E("a", id=" 7")], id="id-one-space-removed"),
    pytest.param(b"data: a\n\n", [E("a", id=None)], id="no-id-is-none"),
    # end of stream
    pytest.param(b"data: a\n\ndata: b\n", [E("a")], id="unterminated-event-discarded"),
    pytest.param(b"data: a\n\ndata: b", [E("a")], id="unterminated-line-discarded"),
    pytest.param(b"data: a\r\n\r\ndata: b\r\n\r", [E("a"), E("b")], id="final-cr-dispatches"),
    # BOM
    pytest.param(b"\xef\xbb\xbfdata: a\n\n", [E("a")], id="leading-bom-stripped"),
    pytest.param(b"\xef\xbb\xbf\xef\xbb\xbfdata: a\n\n", [], id="only-one-bom-stripped"),
    pytest.param(b"\xef\xbb\xbf\n\ndata: a\n\n", [E("a")], id="bom-then-blank-line"),
    pytest.param(b"data: a\n\n\xef\xbb\xbfdata: b\n\n", [E("a")], id="bom-later-not-stripped"),
    pytest.param(b"data: \xef\xbb\xbfa\n\n", [E("\ufeffa")], id="bom-in-value-kept"),
    # UTF-8
    pytest.param("data: 😀é€\n\n".encode(), [E("😀é€")], id="utf8-multibyte"),
    pytest.param("event: ☃\ndata: 😀\n\n".encode(), [E("😀", "☃")], id="utf8-event-name"),
    pytest.param(b"data: a\xffb\xfe\n\n", [E("a\ufffdb\ufffd")], id="invalid-utf8-replaced"),
    pytest.param(b"data: \xf0\x9f\n\n", [E("\ufffd")], id="truncated-utf8-replaced"),
    pytest.param(b"data: \xed\xa0\x80\n\n", [E("\ufffd" * 3)], id="encoded-surrogate-replaced"),
    pytest.param(b"data: \xc0\xaf\n\n", [E("\ufffd\ufffd")], id="overlong-utf8-replaced"),
    pytest.param(
        "data: a\u2028b\u2029c\x85d\x0be\x0cf\x1cg\n\n".encode(),
        [E("a\u2028b\u2029c\x85d\x0be\x0cf\x1cg")],
        id="only-cr-and-lf-end-lines",
    ),
    # a realistic upstream
    pytest.param(
        b'retry: 3000\n\nevent: start\nid: 1\ndata: {"a":1}\n\nid: 2\ndata: {"content":"Hel"}\n\n'
        b": keepalive\n\ndata: [DONE]\n\n",
        [E('{"a":1}', "start", "1"), E('{"content":"Hel"}', id="2"), E("[DONE]", id="2")],
        id="default-protocol",
    ),
]


@pytest.mark.parametrize(("raw", "expected"), DECODE_CASES)
def test_decode(raw: bytes, expected: list[Item]) -> None:
    assert_decodes(raw, expected)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(b"retry: 1000\n", 1000, id="digits"),
        pytest.param(b"retry: 0\n", 0, id="zero"),
        pytest.param(b"retry: 007\n", 7, id="leading-zeros"),
        pytest.param(b"retry:1000\n", 1000, id="no-space"),
        pytest.param(b"retry: 1000\nretry: x\n", 1000, id="invalid-keeps-previous"),
        pytest.param(b"retry: 10a\n", None, id="letters"),
        pytest.param(b"retry: -1\n", None, id="negative"),
        pytest.param(b"retry: 1.5\n", None, id="decimal"),
        pytest.param(b"retry: +1\n", None, id="plus-sign"),
        pytest.param(b"retry:  100\n", None, id="second-space-not-removed"),
        pytest.param(b"retry: 100 \n", None, id="trailing-space"),
        pytest.param(b"retry:\n", None, id="empty"),
        pytest.param(b"retry\n", None, id="no-colon"),
        pytest.param("retry: ١٢\n".encode(), None, id="arabic-indic-digits"),
        pytest.param("retry: ²\n".encode(), None, id="superscript-digit"),
        pytest.param("retry: \uff11\n".encode(), None, id="fullwidth-digit"),
    ],
)
def test_retry(raw: bytes, expected: int | None) -> None:
    assert assert_decodes(raw, []).retry == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(b": hi\n", [Comment("hi")], id="space"),
        pytest.param(b":hi\n", [Comment("hi")], id="no-space"),
        pytest.param(b":  hi\n", [Comment(" hi")], id="one-space-removed"),
        pytest.param(b":\n", [Comment("")], id="empty"),
        pytest.param(b": a: b\r\n", [Comment("a: b")], id="colon-inside"),
        pytest.param(
            b": keepalive\n\ndata: a\n\n", [Comment("keepalive"), E("a")], id="with-event"
        ),
        pytest.param(b": unterminated", [], id="unterminated-discarded"),
    ],
)
def test_decode_comments(raw: bytes, expected: list[Item]) -> None:
    assert_decodes(raw, expected, comments=True)


@pytest.mark.parametrize(
    ("raw", "expected", "last_event_id"),
    [
        pytest.param(b"data: a\n\n", [E("a")], "", id="never-set"),
        pytest.param(b"id: 1\ndata: a\n\n", [E("a", id="1")], "1", id="dispatched"),
        pytest.param(b"id: 1\n\n", [], "1", id="dispatched-without-data"),
        pytest.param(
            b"id: 1\ndata: a\n\nid: 2\ndata: b\n",
            [E("a", id="1")],
            "1",
            id="pending-event-not-counted",
        ),
        pytest.param(b"id: 1\n\nid\n\n", [], "", id="reset-by-empty-id"),
        pytest.param(b"id: 1\n\nid: 2\x00\n\n", [], "1", id="nul-ignored"),
    ],
)
def test_last_event_id(raw: bytes, expected: list[Item], last_event_id: str) -> None:
    assert assert_decodes(raw, expected).last_event_id == last_event_id


def test_every_byte_of_an_emoji_split() -> None:
    raw = "data: 😀\n\n".encode()
    emoji_at = raw.index(b"\xf0")
    for cut in range(emoji_at + 1, emoji_at + 4):
        decoder = SSEDecoder()
        assert decoder.feed(raw[:cut]) == []
        assert decoder.feed(raw[cut:]) == [E("😀")]


# --- regressions ------------------------------------------------------------


def test_crlf_split_across_chunks_is_one_line_end_and_dispatches_promptly() -> None:
    decoder = SSEDecoder()
    # The event is complete at the second CR; it must not wait for the LF.
    assert decoder.feed(b"data: a\r\n\r") == [E("a")]
    # That LF finishes the CRLF: it is not another (empty) line.
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"data: b\r") == []
    assert decoder.feed(b"\ndata: c\r\n\r\n") == [E("b\nc")]


def test_cr_then_cr_across_chunks_is_two_line_ends() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\r") == [E("a")]


@pytest.mark.parametrize("nothing", [b"", b"\xe2\x82"], ids=["empty", "half-a-character"])
def test_cr_held_over_a_chunk_that_decodes_to_nothing(nothing: bytes) -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(nothing) == []
    assert decoder.feed(b"\n" if not nothing else b"\xac\n") == []
    assert decoder.feed(b"\n") == [E("a")]


def test_bom_split_across_chunks_is_stripped() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"\xef") == []
    assert decoder.feed(b"\xbb") == []
    assert decoder.feed(b"\xbfdata: a\n\n") == [E("a")]


def test_bom_after_a_split_bom_is_not_stripped() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"\xef\xbb") == []
    assert decoder.feed(b"\xbf\xef\xbb\xbfdata: a\n\n") == []


def test_unterminated_event_does_not_advance_last_event_id() -> None:
    # A client that reconnected with Last-Event-ID 2 here would never get event 2.
    decoder = SSEDecoder()
    decoder.feed(b"id: 1\ndata: a\n\nid: 2\ndata: b\n")
    assert decoder.last_event_id == "1"
    decoder.close()
    assert decoder.last_event_id == "1"
    decoder.feed(b"data: c\n\n")
    assert decoder.last_event_id == "1"


def test_close_discards_pending_event_and_keeps_last_event_id_and_retry() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"retry: 500\nid: 1\ndata: a\n\nevent: x\ndata: partial") == [
        E("a", id="1")
    ]
    assert decoder.close() == []
    # A reconnection: a new response, which may start with its own BOM.
    assert decoder.feed(b"\xef\xbb\xbfdata: b\n\n") == [E("b", id="1")]
    assert (decoder.last_event_id, decoder.retry) == ("1", 500)


def test_close_replaces_truncated_utf8_and_drops_it() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\ndata: \xf0\x9f") == [E("a")]
    assert decoder.close() == []


def test_long_line_split_into_many_chunks_is_not_quadratic() -> None:
    # The partial line used to be re-joined on every chunk: O(n^2) for one long
    # line (a big tool call) in small network chunks (~7 s for this one). Now the
    # pieces wait in a list and are joined once, when the line ends.
    body = b"data: " + b"x" * 1_000_000
    decoder = SSEDecoder()
    pieces = [body[i : i + 256] for i in range(0, len(body), 256)]
    for piece in pieces:
        assert decoder.feed(piece) == []
    assert len(decoder._tail) == len(pieces)  # kept as pieces, never re-joined per chunk
    assert decoder.feed(b"\n\n") == [E("x" * 1_000_000)]
    assert decoder._tail == []


def test_iter_events() -> None:
    chunks = [b": hi\ndata: a\r", b"\n\r\ndata: b\n", b"\n", b"data: unterminated\n"]
    assert list(iter_events(chunks)) == [E("a"), E("b")]
    assert list(iter_events(chunks, comments=True)) == [Comment("hi"), E("a"), E("b")]


# --- encoder ----------------------------------------------------------------

ENCODE_CASES = [
    pytest.param(("hello",), {}, b"data: hello\n\n", id="text"),
    pytest.param(("",), {}, b"data: \n\n", id="empty-text"),
    pytest.param((" lead",), {}, b"data:  lead\n\n", id="leading-space-kept"),
    pytest.param(("a\nb",), {}, b"data: a\ndata: b\n\n", id="lf"),
    pytest.param(("a\r\nb",), {}, b"data: a\ndata: b\n\n", id="crlf"),
    pytest.param(("a\rb",), {}, b"data: a\ndata: b\n\n", id="cr"),
    pytest.param(("a\n\nb",), {}, b"data: a\ndata: \ndata: b\n\n", id="blank-line-in-data"),
    pytest.param(("a\r\rb",), {}, b"data: a\ndata: \ndata: b\n\n", id="two-crs"),
    pytest.param(("a\n\r\nb",), {}, b"data: a\ndata: \ndata: b\n\n", id="lf-crlf"),
    pytest.param(("a\n",), {}, b"data: a\ndata: \n\n", id="trailing-lf"),
    pytest.param(("\n",), {}, b"data: \ndata: \n\n", id="only-lf"),
    pytest.param(
        ("\n\ndata: x",), {}, b"data: \ndata: \ndata: data: x\n\n", id="injection-in-text"
    ),
    pytest.param(
        ("a\u2028b\u2029c\x85d",),
        {},
        "data: a\u2028b\u2029c\x85d\n\n".encode(),
        id="unicode-separators-not-line-ends",
    ),
    pytest.param(("😀",), {}, "data: 😀\n\n".encode(), id="utf8"),
    pytest.param(("[DONE]",), {}, DONE, id="done"),
    pytest.param(({"content": "Hel"},), {}, b'data: {"content":"Hel"}\n\n', id="json"),
    pytest.param(
        ({"content": "a\nb\r\n\n\ndata: x"},),
        {},
        b'data: {"content":"a\\nb\\r\\n\\n\\ndata: x"}\n\n',
        id="json-with-line-breaks",
    ),
    pytest.param(
        ({"content": "\u2028\u2029é😀"},),
        {},
        'data: {"content":"\u2028\u2029é😀"}\n\n'.encode(),
        id="json-unicode-raw",
    ),
    pytest.param(([1, "a", None, True],), {}, b'data: [1,"a",null,true]\n\n', id="json-list"),
    pytest.param((0,), {}, b"data: 0\n\n", id="json-zero"),
    pytest.param((False,), {}, b"data: false\n\n", id="json-false"),
    pytest.param(({},), {}, b"data: {}\n\n", id="json-empty-object"),
    pytest.param((), {"retry": 3000}, b"retry: 3000\n\n", id="retry"),
    pytest.param((), {"retry": 0}, b"retry: 0\n\n", id="retry-zero"),
    pytest.param((), {"comment": "keepalive"}, b": keepalive\n\n", id="comment"),
    pytest.param((), {"comment": ""}, b":\n\n", id="empty-comment"),
    pytest.param(
        (), {"comment": "a\r\nb\rc\nd"}, b": a\n: b\n: c\n: d\n\n", id="comment-line-breaks"
    ),
    pytest.param((), {"comment": "a\n\nb"}, b": a\n:\n: b\n\n", id="comment-blank-line"),
    pytest.param((), {"comment": "\n\ndata: x"}, b":\n:\n: data: x\n\n", id="comment-injection"),
    pytest.param(("x",), {"event": "start"}, b"event: start\ndata: x\n\n", id="event"),
    pytest.param(("x",), {"event": ""}, b"event: \ndata: x\n\n", id="empty-event"),
    pytest.param(("x",), {"id": "42"}, b"id: 42\ndata: x\n\n", id="id"),
    pytest.param(("x",), {"id": ""}, b"id: \ndata: x\n\n", id="empty-id"),
    pytest.param(("x",), {"id": "a:b c"}, b"id: a:b c\ndata: x\n\n", id="id-with-colon"),
    pytest.param((), {"event": "ping"}, b"event: ping\n\n", id="event-without-data"),
    pytest.param(
        ({"stream_id": "s"},),
        {"event": "start", "id": "s-1", "retry": 3000, "comment": "hi"},
        b': hi\nevent: start\nid: s-1\nretry: 3000\ndata: {"stream_id":"s"}\n\n',
        id="every-field-in-order",
    ),
]


@pytest.mark.parametrize(("args", "kwargs", "expected"), ENCODE_CASES)
def test_encode(args: tuple[object, ...], kwargs: dict[str, object], expected: bytes) -> None:
    assert encode(*args, **kwargs) == expected


@pytest.mark.parametrize(("args", "kwargs", "expected"), ENCODE_CASES)
def test_encode_round_trips(
    args: tuple[object, ...], kwargs: dict[str, object], expected: bytes
) -> None:
    data = args[0] if args else None
    if data is None:
        assert_decodes(expected, [])
        return
    event = kwargs.get("event") or "message"
    event_id = kwargs.get("id")
    assert isinstance(event, str)
    assert event_id is None or isinstance(event_id, str)
    (decoded,) = decode([expected])[0]
    assert isinstance(decoded, ServerSentEvent)
    assert (decoded.event, decoded.id) == (event, event_id)
    if isinstance(data, str):
        # The SSE rule: every line end arrives as LF.
        assert decoded.data == data.replace("\r\n", "\n").replace("\r", "\n")
    else:
        assert decoded.json() == data


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        pytest.param({"event": "a\nb"}, ValueError, id="lf-in-event"),
        pytest.param({"event": "a\r"}, ValueError, id="cr-in-event"),
        pytest.param({"event": "\r\n"}, ValueError, id="crlf-in-event"),
        pytest.param({"id": "1\n"}, ValueError, id="lf-in-id"),
        pytest.param({"id": "1\rdata: x"}, ValueError, id="cr-in-id"),
        pytest.param({"id": "a\x00"}, ValueError, id="nul-in-id"),
        pytest.param({"id": 5}, TypeError, id="int-id"),
        pytest.param({"event": b"x"}, TypeError, id="bytes-event"),
        pytest.param({"retry": -1}, ValueError, id="negative-retry"),
        pytest.param({"retry": 1.5}, ValueError, id="float-retry"),
        pytest.param({"retry": True}, ValueError, id="bool-retry"),
        pytest.param({"retry": "10"}, ValueError, id="str-retry"),
        pytest.param({}, ValueError, id="nothing"),
        pytest.param({"data": float("nan")}, ValueError, id="nan"),
        pytest.param({"data": {"x": float("inf")}}, ValueError, id="infinity"),
        pytest.param({"data": b"bytes"}, TypeError, id="bytes-data"),
        pytest.param({"data": "\ud83d"}, UnicodeEncodeError, id="lone-surrogate-in-text"),
    ],
)
def test_encode_rejects(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        encode(**kwargs)  # type: ignore[arg-type]


def test_encode_comment() -> None:
    assert encode_comment() == b":\n\n"
    assert encode_comment("keepalive") == b": keepalive\n\n"
    assert encode_comment("a\nb") == b": a\n: b\n\n"


def test_dataclasses_encode() -> None:
    event = ServerSentEvent({"content": "x"}, event="reasoning", id="3")
    assert event.encode() == b'event: reasoning\nid: 3\ndata: {"content":"x"}\n\n'
    assert ServerSentEvent("x", retry=10).encode() == b"retry: 10\ndata: x\n\n"
    assert Comment("keepalive").encode() == b": keepalive\n\n"
    assert E('{"a": [1]}').json() == {"a": [1]}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param({"a": 1, "b": [1, 2]}, '{"a":1,"b":[1,2]}', id="compact"),
        pytest.param("é\u2028", '"é\u2028"', id="not-ascii-escaped"),
        pytest.param("\r\n", '"\\r\\n"', id="line-ends-escaped"),
        pytest.param("\ud83d", '"\\ud83d"', id="lone-high-surrogate"),
        pytest.param({"\udc00": "a\udfff"}, '{"\\udc00":"a\\udfff"}', id="lone-surrogates"),
    ],
)
def test_json_dumps(value: object, expected: str) -> None:
    assert json_dumps(value) == expected
    assert json.loads(expected) == value


def test_json_lone_surrogate_is_escaped_not_unencodable() -> None:
    # An upstream "\ud83d" (half an emoji) made encode() raise UnicodeEncodeError.
    raw = encode({"content": "\ud83d"})
    assert raw == b'data: {"content":"\\ud83d"}\n\n'
    (event,) = decode([raw])[0]
    assert isinstance(event, ServerSentEvent)
    assert event.json() == {"content": "\ud83d"}


def test_json_nan_is_rejected_not_sent_as_invalid_json() -> None:
    # json.dumps writes NaN, which a browser's JSON.parse rejects.
    with pytest.raises(ValueError):
        json_dumps({"temperature": float("nan")})


def test_exported_names() -> None:
    defined = {
        name
        for name, value in vars(sse).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == sse.__name__
    }
    assert set(sse.__all__) == defined | {"DONE"}


def test_docstring_examples() -> None:
    assert doctest.testmod(sse).failed == 0


@pytest.mark.parametrize(
    "data",
    [
        {"content": "plain"},
        {"content": "line\r\nbreak\n\ndata: injected\revent: x"},
        {"content": "emoji 🙂 and é, \u2028 separators \u2029"},
        {"content": "lone \ud83d surrogate"},
        {"error": {"type": "t", "message": "m"}},
        [1, "two", None],
    ],
)
@pytest.mark.parametrize(("event", "id"), [(None, None), ("done", "s:9"), (None, "abc:1")])
def test_encode_json_fast_path_is_byte_identical_to_encode(data, event, id):
    assert sse.encode_json(data, event=event, id=id) == sse.encode(data, event=event, id=id)


def test_encode_json_refuses_framing_breaks_like_encode():
    with pytest.raises(ValueError):
        sse.encode_json({}, event="a\nb")
    with pytest.raises(ValueError):
        sse.encode_json({}, id="a\rb")
