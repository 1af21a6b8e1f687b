"""The step loop in-process, on the fake provider: events, results, errors, cancel, output."""

from __future__ import annotations

import json
import threading
import time

import pytest
from flask import Flask

from flask_ai_sse import AISSE, ToolError
from flask_ai_sse.errors import ValidationError
from flask_ai_sse.testing import FakeProvider, FakeReply, FakeToolCall, collect


def make(script, **config):
    app = Flask(__name__)
    app.config.update(config)
    provider = FakeProvider(script=script, delay=0)
    ai = AISSE(app, provider=provider)
    return app, ai, provider


def events(result):
    return [(e.event, e.json() if e.data != "[DONE]" else None) for e in result.events]


def named(result, name):
    return [e.json() for e in result.events if e.event == name]


def test_two_steps_event_order_ids_and_summed_usage():
    app, ai, provider = make(
        [
            FakeReply(
                text="Let me look.",
                tool_calls=[FakeToolCall("get_order", {"order_id": "A1"}, id="c1")],
            ),
            FakeReply(text="It shipped."),
        ]
    )
    seen = []

    @ai.tool
    def get_order(order_id: str) -> dict:
        """Look up an order.

        Args:
            order_id: The order number.
        """
        seen.append(order_id)
        return {"id": order_id, "status": "shipped"}

    with app.test_request_context():
        result = collect(ai.ask_stream("Where is A1?", tools=["get_order"]))
    kinds = [e.event for e in result.events]
    assert kinds == [
        "start",
        *["message"] * 3,
        "tool_call_delta",
        "tool_call_delta",
        "tool_call",
        "tool_result",
        "message",
        "message",
        "done",
        "message",  # [DONE]
    ]
    ids = [e.id for e in result.events if e.data != "[DONE]"]
    seqs = [int(i.rsplit(":", 1)[1]) for i in ids]
    assert seqs == list(range(1, len(seqs) + 1))  # one id sequence over both steps
    assert named(result, "tool_call") == [
        {"id": "c1", "name": "get_order", "arguments": {"order_id": "A1"}}
    ]
    assert named(result, "tool_result") == [
        {"id": "c1", "name": "get_order", "result": {"id": "A1", "status": "shipped"}}
    ]
    done = named(result, "done")[0]
    assert done["finish_reason"] == "stop" and done["steps"] == 2
    assert done["usage"]["completion_tokens"] == 4 + 2  # 3 words + 1 call, then 2 words
    assert result.text == "Let me look.It shipped."
    assert seen == ["A1"]
    # step 2 carried the assistant's call and the tool's result
    second = provider.requests[1]
    assert second.messages[-2]["tool_calls"] == [
        {"id": "c1", "name": "get_order", "arguments": {"order_id": "A1"}}
    ]
    assert second.messages[-1] == {
        "role": "tool",
        "tool_call_id": "c1",
        "content": '{"id": "A1", "status": "shipped"}',
    }
    assert [t.name for t in second.tools] == ["get_order"]
    assert second.tools[0].parameters["properties"]["order_id"]["description"] == (
        "The order number."
    )


def test_parallel_calls_run_at_once():
    calls = [FakeToolCall("slow", {"n": i}, id=f"c{i}") for i in range(3)]
    app, ai, _ = make([FakeReply(text="", tool_calls=calls), FakeReply(text="ok")])
    barrier = threading.Barrier(3, timeout=5)

    @ai.tool
    def slow(n: int) -> int:
        barrier.wait()  # only passes when all three run together
        return n * 10

    with app.test_request_context():
        result = collect(ai.ask_stream("x", tools=[slow]))
    assert sorted(r["result"] for r in named(result, "tool_result")) == [0, 10, 20]


def test_raising_tool_becomes_an_error_result_the_model_sees(caplog):
    app, ai, provider = make(
        [FakeReply(text="", tool_calls=[FakeToolCall("boom", {}, id="c1")]), "Sorry."]
    )

    @ai.tool
    def boom() -> str:
        raise RuntimeError("secret database password in here")

    @ai.tool
    def polite() -> str:
        raise ToolError("No such order.")

    with app.test_request_context():
        result = collect(ai.ask_stream("x", tools=["boom", "polite"]))
    (res,) = named(result, "tool_result")
    assert res == {
        "id": "c1",
        "name": "boom",
        "error": {"type": "tool_error", "message": "The tool failed (RuntimeError)."},
    }
    assert not any("secret" in e.data for e in result.events)
    assert "secret database password" in caplog.text  # the traceback is in the log
    assert provider.requests[1].messages[-1]["content"] == (
        '{"error": {"type": "tool_error", "message": "The tool failed (RuntimeError)."}}'
    )
    assert named(result, "done")[0]["finish_reason"] == "stop"

    provider.script = [
        FakeReply(text="", tool_calls=[FakeToolCall("polite", id="c2")]),
        FakeReply(text="ok"),
    ]
    with app.test_request_context():
        result = collect(ai.ask_stream("x", tools=["boom", "polite"]))
    assert named(result, "tool_result")[0]["error"] == {
        "type": "tool_error",
        "message": "No such order.",
    }


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ('{"order_id": "A1"', "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"order_id": 5}', "do not match the schema at order_id"),
    ],
)
def test_bad_arguments_become_a_tool_error(arguments, problem):
    app, ai, _ = make(
        [FakeReply(text="", tool_calls=[FakeToolCall("get_order", arguments, id="c1")]), "ok"]
    )
    ran = []

    @ai.tool
    def get_order(order_id: str) -> str:
        ran.append(order_id)
        return "x"

    with app.test_request_context():
        result = collect(ai.ask_stream("x", tools=["get_order"]))
    (res,) = named(result, "tool_result")
    assert res["error"]["type"] == "invalid_arguments" and problem in res["error"]["message"]
    assert ran == []
    assert named(result, "done")[0]["steps"] == 2


def test_client_tool_ends_the_stream_with_tool_calls():
    app, ai, provider = make(
        [FakeReply(text="", tool_calls=[FakeToolCall("pick_color", {"n": 2}, id="c1")])]
    )
    client_tool = {
        "name": "pick_color",
        "description": "Ask the user.",
        "parameters": {"type": "object", "properties": {"n": {"type": "integer"}}},
    }
    with app.test_request_context():
        result = collect(ai.ask_stream("x", tools=[client_tool]))
    assert named(result, "tool_call") == [{"id": "c1", "name": "pick_color", "arguments": {"n": 2}}]
    assert named(result, "tool_result") == []
    done = named(result, "done")[0]
    assert done["finish_reason"] == "tool_calls" and done["steps"] == 1
    assert len(provider.requests) == 1
    # the next turn carries the client's result
    provider.script = [FakeReply(text="Blue it is.")]
    messages = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": "", "tool_calls": named(result, "tool_call")},
        {"role": "tool", "tool_call_id": "c1", "content": "blue"},
    ]
    with app.test_request_context():
        answer = ai.ask(messages=messages, tools=[client_tool])
    assert answer.text == "Blue it is."
    assert provider.requests[-1].messages[-1]["tool_call_id"] == "c1"


def test_max_steps_ends_with_max_steps():
    call = FakeReply(text="", tool_calls=[FakeToolCall("again", {})])
    app, ai, provider = make([call])

    @ai.tool
    def again() -> str:
        return "more"

    with app.test_request_context():
        result = collect(ai.ask_stream("x", tools=["again"], max_steps=3))
    done = named(result, "done")[0]
    assert (done["finish_reason"], done["raw_finish_reason"], done["steps"]) == (
        "max_steps",
        "tool_calls",
        3,
    )
    assert len(named(result, "tool_result")) == 2  # the last step's call is not run
    assert len(provider.requests) == 3


def test_tool_timeout():
    app, ai, _ = make(
        [FakeReply(text="", tool_calls=[FakeToolCall("sleepy", {}, id="c1")]), "ok"],
        AI_SSE_TOOL_TIMEOUT=0.2,
    )
    release = threading.Event()

    @ai.tool
    def sleepy() -> str:
        release.wait(5)
        return "late"

    with app.test_request_context():
        result = collect(ai.ask_stream("x", tools=["sleepy"]))
    release.set()
    assert named(result, "tool_result")[0]["error"]["type"] == "timeout"
    assert named(result, "done")[0]["finish_reason"] == "stop"


def test_cancel_during_a_tool_ends_at_once_and_opens_no_next_step():
    app, ai, provider = make(
        [FakeReply(text="", tool_calls=[FakeToolCall("slow", {}, id="c1")]), "never"]
    )
    started, release = threading.Event(), threading.Event()

    @ai.tool
    def slow() -> str:
        started.set()
        release.wait(10)
        return "late"

    with app.test_request_context():
        gen = ai.start_generation(_params(ai, requested_tools=["slow"]))
    assert started.wait(5)
    t0 = time.monotonic()
    gen.abort("cancelled")
    assert gen.done.wait(5)
    assert time.monotonic() - t0 < 1.0  # not waiting out the tool
    release.set()
    assert gen.status == "cancelled"
    assert len(provider.requests) == 1


def _params(ai, **kw):
    from flask_ai_sse._validation import validate

    params = validate(prompt="x", limits=ai.state().settings.limits, default_model="fake-1")
    for key, value in kw.items():
        setattr(params, key, value)
    return params


def test_tool_runs_in_the_app_context():
    app, ai, _ = make([FakeReply(text="", tool_calls=[FakeToolCall("setting", {})]), "ok"])
    app.config["ANSWER"] = 42

    @ai.tool
    def setting() -> int:
        from flask import current_app

        return int(current_app.config["ANSWER"])

    with app.test_request_context():
        result = collect(ai.ask_stream("x", tools=["setting"]))
    assert named(result, "tool_result")[0]["result"] == 42


SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "temp": {"type": "number"}},
    "required": ["city", "temp"],
    "additionalProperties": False,
}


def test_structured_output_streamed_and_asked():
    app, ai, provider = make([FakeReply(chunks=['{"city": ', '"Oslo", "temp": 3.5}'])])
    with app.test_request_context():
        result = collect(ai.ask_stream("x", schema=SCHEMA))
        answer = ai.ask("x", schema=SCHEMA)
    done = named(result, "done")[0]
    assert done["output"] == {"city": "Oslo", "temp": 3.5}
    assert answer.data == {"city": "Oslo", "temp": 3.5}
    assert provider.requests[0].schema == SCHEMA


@pytest.mark.parametrize("text", ['{"city": "Oslo"}', "not json at all"])
def test_invalid_output_ends_with_invalid_output(text):
    from flask_ai_sse import InvalidOutput

    app, ai, _ = make([FakeReply(text=text)])
    with app.test_request_context():
        result = collect(ai.ask_stream("x", schema=SCHEMA))
        with pytest.raises(InvalidOutput):
            ai.ask("x", schema=SCHEMA)
    assert result.terminal.event == "error"
    assert result.terminal.json()["error"]["type"] == "invalid_output"


def test_ask_runs_tools_and_sums_usage():
    app, ai, _ = make(
        [FakeReply(text="", tool_calls=[FakeToolCall("add", {"a": 2, "b": 3})]), "Five."]
    )

    @ai.tool
    def add(a: int, b: int) -> int:
        return a + b

    with app.test_request_context():
        answer = ai.ask("2+3?", tools=["add"])
    assert (answer.text, answer.steps, answer.finish_reason) == ("Five.", 2, "stop")
    assert answer.usage is not None and answer.usage.completion_tokens == 2


def test_stream_iterator_and_task_take_tools():
    app, ai, fake = make([FakeReply(text="", tool_calls=[FakeToolCall("one", {})]), "done"])

    @ai.tool
    def one() -> int:
        return 1

    with app.test_request_context():
        kinds = [c.kind for c in ai.stream("x", tools=["one"])]
        assert "tool_result" in kinds and kinds.count("step") == 2
        fake.script = [
            FakeReply(text="", tool_calls=[FakeToolCall("one")]),
            FakeReply(text="ok"),
        ]
        answer = ai.task().prompt("x").tools("one").tool_choice("required").ask()
        requests = fake.requests
    assert answer.steps == 2
    # a forced call is asked once: the next step lets the model answer
    assert [r.tool_choice for r in requests[-2:]] == ["required", "auto"]


def test_bad_tool_arguments_to_the_api_are_refused_before_upstream():
    app, ai, provider = make(["x"])
    with app.test_request_context():
        with pytest.raises(ValidationError, match="tool_choice"):
            ai.ask("x", tools=[{"name": "a"}], tool_choice="b")
        with pytest.raises(ValidationError, match="schema"):
            ai.ask("x", schema={"type": "no-such-type"})
    assert provider.requests == []


def test_a_fast_result_is_streamed_before_a_slow_one_ends():
    calls = [FakeToolCall("slow", {}, id="s"), FakeToolCall("fast", {}, id="f")]
    app, ai, provider = make([FakeReply(text="", tool_calls=calls), FakeReply(text="ok")])
    release = threading.Event()

    @ai.tool
    def slow() -> str:
        release.wait(5)
        return "slow"

    @ai.tool
    def fast() -> str:
        return "fast"

    with app.test_request_context():
        chunks = ai.stream("x", tools=["slow", "fast"])
        for chunk in chunks:
            if chunk.kind == "tool_result":
                assert chunk.data["result"] == "fast"  # slow is still waiting
                release.set()
                break
        rest = [c for c in chunks if c.kind == "tool_result"]
    assert [c.data["result"] for c in rest] == ["slow"]
    # upstream gets the results in the calls' order
    assert [m["tool_call_id"] for m in provider.requests[1].messages if m["role"] == "tool"] == [
        "s",
        "f",
    ]


def test_the_stream_timeout_covers_a_tool_run():
    app, ai, provider = make(
        [FakeReply(text="", tool_calls=[FakeToolCall("stuck", {}, id="c1")]), "never"],
        AI_SSE_STREAM_TIMEOUT=0.3,
    )
    release = threading.Event()

    @ai.tool
    def stuck() -> str:
        release.wait(10)
        return "late"

    t0 = time.monotonic()
    with app.test_request_context():
        result = collect(ai.ask_stream("x", tools=["stuck"]))
    release.set()
    assert time.monotonic() - t0 < 5
    assert result.terminal.event == "error"
    assert result.terminal.json()["error"]["type"] == "timeout"
    assert len(provider.requests) == 1


def test_a_next_step_refused_by_the_provider_ends_with_an_error():
    from flask_ai_sse.errors import ProviderStatusError

    refused = ProviderStatusError("The provider refused.", status_code=429)
    app, ai, provider = make(
        [
            FakeReply(text="", tool_calls=[FakeToolCall("one", {}, id="c1")]),
            FakeReply(fail_before=refused),
        ]
    )

    @ai.tool
    def one() -> int:
        return 1

    with app.test_request_context():
        result = collect(ai.ask_stream("x", tools=["one"]))
    assert [e.event for e in result.events if e.event.startswith("tool")] == [
        "tool_call_delta",
        "tool_call_delta",
        "tool_call",
        "tool_result",
    ]
    assert result.terminal.event == "error"
    assert len(provider.requests) == 2


@pytest.mark.parametrize("protocol", ["vercel", "openai"])
def test_tool_steps_in_the_other_protocols(protocol):
    app, ai, _ = make(
        [
            FakeReply(text="Looking.", tool_calls=[FakeToolCall("lookup", {"q": "x"}, id="c1")]),
            FakeReply(text="Found."),
        ]
    )

    @ai.tool
    def lookup(q: str) -> str:
        return "it"

    with app.test_request_context():
        result = collect(ai.ask_stream("x", tools=["lookup"], protocol=protocol))
    data = [json.loads(e.data) for e in result.events if e.data != "[DONE]"]
    if protocol == "vercel":
        kinds = [d["type"] for d in data]
        assert kinds.index("tool-input-start") < kinds.index("tool-input-available")
        assert kinds.index("tool-input-available") < kinds.index("tool-output-available")
        output = next(d for d in data if d["type"] == "tool-output-available")
        assert (output["toolCallId"], output["output"]) == ("c1", "it")
        assert kinds.count("start-step") == 2  # content after the results opens step 2
    else:
        calls = [
            c
            for d in data
            for ch in d.get("choices", ())
            for c in ch["delta"].get("tool_calls", ())
        ]
        assert calls == []  # the server ran it: an OpenAI client must not see it
        text = "".join(
            ch["delta"].get("content") or "" for d in data for ch in d.get("choices", ())
        )
        assert text == "Looking.Found."
