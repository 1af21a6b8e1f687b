"""The load generator's parser, fed whole and in every two-piece split.

python -m pytest benchmarks/test_wire.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from wire import StreamParser


def chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
OURS = chunked(
    b'retry: 3000\n\nevent: start\nid: s:1\ndata: {"stream_id":"s"}\n\n',
    b'id: s:2\ndata: {"content":"tok0 "}\n\nid: s:3\ndata: {"content":"tok1 "}\n\n',
    b'event: done\nid: s:4\ndata: {"finish_reason":"stop"}\n\ndata: [DONE]\n\n',
)
OPENAI = chunked(
    b'data: {"choices":[{"delta":{"role":"assistant","content":""}}]}\n\n',
    b'data: {"choices":[{"delta":{"content":"tok0 "}}]}\n\n',
    b'data: {"choices":[{"delta":{"content":"tok1 "}}]}\n\ndata: [DONE]\n\n',
)
BASELINE = chunked(
    b'data: {"content": "tok0 "}\n\n', b'data: {"content": "tok1 "}\n\n', b"data: [DONE]\n\n"
)


@pytest.mark.parametrize("body", [OURS, OPENAI, BASELINE], ids=["ours", "openai", "baseline"])
def test_counts_tokens_in_any_split(body: bytes) -> None:
    response = HEAD + body
    for cut in range(len(response) + 1):
        parser = StreamParser()
        tokens = parser.feed(response[:cut]) + parser.feed(response[cut:])
        assert (tokens, parser.status, parser.done, parser.ended) == (2, 200, True, True), cut


def test_error_event_and_status() -> None:
    parser = StreamParser()
    body = chunked(b'event: error\ndata: {"type":"timeout"}\n\ndata: [DONE]\n\n')
    parser.feed(HEAD.replace(b"200 OK", b"502 Bad Gateway") + body)
    assert (parser.status, parser.error, parser.done) == (502, True, True)
