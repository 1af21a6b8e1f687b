"""Each protocol's encoder, byte for byte, and the same bytes whatever the resume point."""

from __future__ import annotations

from pathlib import Path

import pytest

from flask_ai_sse.protocols import END, PROTOCOLS, create_encoder, pack, pack_text, unpack
from flask_ai_sse.sse import DONE, encode, iter_events

from .decode import read
from .script import CANCELLED, CLIENT, FAILED, RICH, STREAM_ID

GOLDEN = Path(__file__).parent / "golden"
SCRIPTS = {"rich": RICH, "client": CLIENT, "failed": FAILED, "cancelled": CANCELLED}
OPTIONS = {"created": 1700000000, "include_usage": True}


def encoder(protocol: str, **options):
    return create_encoder(protocol, STREAM_ID, **{**OPTIONS, **options})


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("script", SCRIPTS)
def test_bytes_match_the_reviewed_golden_file(protocol, script):
    """The golden files were read against the AI SDK's uiMessageChunkSchema and OpenAI's
    chunk format; a change here is a change of wire format."""
    expected = (GOLDEN / f"{protocol}-{script}.sse").read_bytes()
    assert encoder(protocol).encode(1, SCRIPTS[script]) == expected


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("script", SCRIPTS)
def test_event_by_event_is_the_same_as_all_at_once(protocol, script):
    entries = SCRIPTS[script]
    one = encoder(protocol)
    pieces = b"".join(one.encode(seq, [e]) for seq, e in enumerate(entries, 1))
    assert pieces == encoder(protocol).encode(1, entries)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("script", SCRIPTS)
def test_a_reader_resuming_anywhere_sends_what_an_unbroken_one_sent(protocol, script):
    """Resume after event k: the encoder skips events 1..k, then its bytes are exactly
    the unbroken reader's bytes for events k+1.. (an open text part stays open, ...)."""
    entries = SCRIPTS[script]
    unbroken = encoder(protocol)
    per_event = [unbroken.encode(seq, [e]) for seq, e in enumerate(entries, 1)]
    for k in range(len(entries)):
        resumed = encoder(protocol)
        resumed.skip(1, entries[:k])
        assert resumed.encode(k + 1, entries[k:]) == b"".join(per_event[k:]), k


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_every_event_but_done_has_the_id_of_its_place_in_the_log(protocol):
    body = encoder(protocol).encode(1, RICH)
    events = list(iter_events([body]))
    assert events[-1].data == "[DONE]"
    seqs = [int(e.id.rpartition(":")[2]) for e in events[:-1] if e.data != "[DONE]"]
    assert seqs == sorted(seqs) and seqs[0] == 1 and seqs[-1] == len(RICH) - 1
    assert body.endswith(b"\n\n" + DONE) and b"id: " not in body.rpartition(b"\n\n")[0][-20:]


def test_default_is_the_contract_format_as_sse_encode_writes_it():
    """Today's default bytes: ``sse.encode`` of each event's data, name and id."""
    expected = b""
    for seq, entry in enumerate(RICH, 1):
        kind, data = unpack(entry)
        if kind == "end":
            expected += DONE
        else:
            name = None if kind == "text" else kind
            expected += encode(data, event=name, id=f"{STREAM_ID}:{seq}")
    assert encoder("default").encode(1, RICH) == expected


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    "text", ["plain", "line\nbreak", "cr\rlf\r\n", "\n\ndata: fake\n\n", "é 🙂 \u2028", "\ud83d"]
)
def test_text_arrives_whole_in_every_protocol(protocol, text):
    """Line breaks, SSE lookalikes and half an emoji never break the framing."""
    entries = [pack("start", {"model": "m"}), pack_text(text[:3]), pack_text(text[3:]), END]
    got = read(protocol, encoder(protocol).encode(1, entries))
    assert got.text == text and got.done


def test_openai_sends_no_blank_line_that_its_sdk_would_read_as_an_empty_event():
    enc = encoder("openai")
    assert enc.prefix == b""
    assert enc.keepalive == b": keepalive\n"
    assert b"\n\n\n" not in enc.encode(1, RICH)


def test_vercel_announces_its_stream_version():
    assert PROTOCOLS["vercel"].headers == {"x-vercel-ai-ui-message-stream": "v1"}


def test_store_failure_ends_in_each_protocol_with_the_last_id():
    error = {"error": {"type": "stream_gap", "message": "Gone."}}
    assert encoder("default").failure(4, error) == (
        b'event: error\nid: s1:4\ndata: {"error":{"type":"stream_gap","message":"Gone."}}\n\n'
        + DONE
    )
    assert encoder("vercel").failure(4, error) == (
        b'id: s1:4\ndata: {"type":"error","errorText":"Gone."}\n\n' + DONE
    )
    assert encoder("openai").failure(4, error) == (
        b'id: s1:4\ndata: {"error":{"message":"Gone.","type":"stream_gap","param":null,'
        b'"code":"stream_gap"}}\n\n' + DONE
    )


def test_unknown_protocol_is_refused():
    with pytest.raises(ValueError, match="unknown protocol"):
        create_encoder("grpc", STREAM_ID)
