"""The step loop: run the tools a model calls and ask again, as one chunk stream. No Flask.

::

    step 1: upstream ─▶ text, tool_call pieces ─▶ whole calls
              │ all calls are server tools, step < max_steps
              ▼
            run the tools (in parallel, each within AI_SSE_TOOL_TIMEOUT)
              ▼
    step 2: upstream (history + assistant tool_calls + tool results) ─▶ ... ─▶ finish

:class:`StepStream` wraps the first step's :class:`~.providers.base.ChunkStream` and
is one itself, so the engine (one event log, one id sequence, resume, cancel) and
``ask()``/``stream()`` need nothing new. It adds chunks: ``step`` when a request
begins, ``tool_call_end`` per whole call, ``tool_result`` per result, ``output``
for structured output. Only the last step's ``finish`` passes; ``usage`` is the
running total over the steps.

Cancel at any point: :meth:`StepStream.abort` aborts the open upstream read or
wakes the wait for the tools; a tool's late result is discarded and no next
request is opened. A tool's exception becomes an error result the model sees;
its traceback goes to the log, and only a :class:`ToolError`'s message is shown
(to the model and the client): other exceptions may carry internal details.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ._tools import Tool
from .chunks import (
    Answer,
    AnswerBuilder,
    ChatRequest,
    Chunk,
    Message,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from .engine.spawn import spawn
from .errors import ConfigurationError, InvalidOutput
from .providers.base import ChunkStream

logger = logging.getLogger("flask_ai_sse")

#: ``finish_reason`` when the model still called tools after ``max_steps`` requests.
MAX_STEPS_REASON = "max_steps"
MAX_ERROR_CHARS = 500

#: How a tool function is invoked: the extension wraps it in the app context.
Invoke = Callable[[Callable[..., Any], dict[str, Any]], Any]


class ToolError(Exception):
    """Raise it in a tool to tell the model (and the client) what went wrong.

    Its message is shown; any other exception is reported as "the tool failed"
    with its class name only, its traceback logged.
    """

    type = "tool_error"


def _call_directly(fn: Callable[..., Any], arguments: dict[str, Any]) -> Any:
    return fn(**arguments)


def check_schema(schema: dict[str, Any]) -> None:
    """Refuse a ``schema=`` that is not a valid JSON Schema (needs ``jsonschema``)."""
    validator = _validator_class()
    try:
        validator.check_schema(schema)
    except Exception as exc:  # jsonschema.SchemaError
        from .errors import ValidationError

        raise ValidationError(
            f"'schema' is not a valid JSON Schema: {getattr(exc, 'message', exc)}",
            type="invalid_tools",
            field="schema",
        ) from None


def _validator_class() -> Any:
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - an install without the extra
        raise ConfigurationError(
            "Structured output needs jsonschema: pip install 'flask-ai-sse[tools]'."
        ) from None
    return jsonschema.Draft202012Validator


def parse_output(text: str, schema: dict[str, Any]) -> Any:
    """The answer's JSON, validated against ``schema``; :class:`InvalidOutput` otherwise."""
    body = text.strip()
    if body.startswith("```"):  # a model that wraps JSON in a code fence anyway
        body = body.strip("`").removeprefix("json").strip()
    try:
        data = json.loads(body)
    except ValueError:
        raise InvalidOutput("The model's answer is not valid JSON.") from None
    error = next(iter(_validator_class()(schema).iter_errors(data)), None)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "the answer"
        raise InvalidOutput(f"The model's answer does not match the schema at {where}.")
    return data


def tool_content(result: dict[str, Any]) -> str:
    """A result as a ``tool`` message's content: the value's JSON (a string as it is)."""
    if "error" in result:
        return json.dumps({"error": result["error"]})
    value = result["result"]
    return value if isinstance(value, str) else json.dumps(value, default=str)


class StepStream(ChunkStream):
    """The chunks of every step, tools run in between; see the module docstring."""

    def __init__(
        self,
        first: ChunkStream,
        request: ChatRequest,
        open_step: Callable[[ChatRequest], ChunkStream],
        tools: Sequence[Tool],
        *,
        max_steps: int = 8,
        tool_timeout: float = 30.0,
        invoke: Invoke = _call_directly,
    ) -> None:
        super().__init__(provider=first.provider, model=first.model)
        self.request = request
        self._current = first
        self._open_step = open_step
        self.tools = {t.name: t for t in tools}
        self.max_steps = max(1, max_steps)
        self.tool_timeout = tool_timeout
        self.invoke = invoke
        self._wake: queue.Queue[Any] | None = None
        self._lock = threading.Lock()
        self.steps = 0

    # -- ChunkStream ---------------------------------------------------------------

    def abort(self) -> None:
        with self._lock:
            super().abort()
            self._current.abort()
            if self._wake is not None:
                self._wake.put(None)

    def close(self) -> None:
        self._current.close()

    def __iter__(self) -> Iterator[Chunk]:
        messages: list[Message] = list(self.request.messages)
        total = Usage()
        while True:
            self.steps += 1
            yield Chunk("step", data={"step": self.steps})
            text: list[str] = []
            pieces: dict[int, dict[str, Any]] = {}
            finish: Chunk | None = None
            step_usage: Usage | None = None
            for chunk in self._current:
                if self.aborted:
                    return
                if chunk.kind == "finish":
                    finish = chunk
                    continue
                if chunk.kind == "usage":
                    step_usage = chunk.usage
                    continue
                if chunk.kind == "text":
                    text.append(chunk.text)
                elif chunk.kind == "tool_call" and chunk.tool_call is not None:
                    delta = chunk.tool_call
                    call = pieces.setdefault(delta.index, {"id": None, "name": None, "args": ""})
                    call["id"] = delta.id or call["id"]
                    call["name"] = delta.name or call["name"]
                    call["args"] += delta.arguments
                yield chunk
            self._current.close()
            if self.aborted:
                return
            if step_usage is not None:
                total = _add(total, step_usage)
            calls, bad = self._whole_calls(pieces)
            for whole in calls:
                yield Chunk("tool_call_end", data=dict(whole))
            server = bool(calls) and all(
                c["name"] not in self.tools or self.tools[c["name"]].function is not None
                for c in calls
            )
            if server and self.steps < self.max_steps:
                results: list[dict[str, Any]] = [{} for _ in calls]
                for i, result in self._run(calls, bad):  # each as soon as it ends
                    results[i] = result
                    yield Chunk("tool_result", data=result)
                if self.aborted:  # while the tools ran: their results are dropped
                    return
                if step_usage is not None:
                    yield Chunk("usage", usage=total)
                messages.append(
                    {"role": "assistant", "content": "".join(text), "tool_calls": calls}
                )
                messages += [
                    {"role": "tool", "tool_call_id": r["id"], "content": tool_content(r)}
                    for r in results
                ]
                if not self._next(messages):
                    return
                continue
            if self.request.schema is not None and not calls:
                yield Chunk("output", data=parse_output("".join(text), self.request.schema))
            if server:  # still calling tools at the last step allowed
                raw = finish.raw_finish_reason if finish else None
                yield Chunk.finish(MAX_STEPS_REASON, raw or "tool_calls")
            elif finish is not None:
                yield finish
            if step_usage is not None:
                yield Chunk("usage", usage=total)
            return

    # -- steps -----------------------------------------------------------------------

    def _whole_calls(
        self, pieces: dict[int, dict[str, Any]]
    ) -> tuple[list[ToolCall], dict[str, str]]:
        """The step's calls with decoded arguments, and ``id -> problem`` for bad ones."""
        calls: list[ToolCall] = []
        bad: dict[str, str] = {}
        for index in sorted(pieces):
            piece = pieces[index]
            call_id = piece["id"] or f"call_{secrets.token_hex(12)}"
            arguments: Any = {}
            try:
                arguments = json.loads(piece["args"]) if piece["args"].strip() else {}
            except ValueError:
                bad[call_id] = "The arguments are not valid JSON."
                arguments = {}
            if not isinstance(arguments, dict):
                bad[call_id] = "The arguments must be a JSON object."
                arguments = {}
            calls.append({"id": call_id, "name": piece["name"] or "", "arguments": arguments})
        return calls, bad

    def _next(self, messages: list[Message]) -> bool:
        """Open the next step's upstream request, unless aborted first."""
        if self.aborted:
            return False
        # A forced call ("required" or a name) is asked once: kept, it would make every
        # step call again until max_steps, never letting the model answer.
        choice = self.request.tool_choice
        if choice not in (None, "auto", "none"):
            choice = "auto"
        request = dataclasses.replace(self.request, messages=list(messages), tool_choice=choice)
        stream = self._open_step(request)
        with self._lock:
            self._current = stream
            if self.aborted:  # aborted while the request was being opened
                stream.close()
                return False
        return True

    def _run(
        self, calls: list[ToolCall], bad: dict[str, str]
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        """Run the calls at once; ``(index, result)`` as each ends, timeouts last.

        Ends early (and the caller sees ``aborted``) when the stream is aborted.
        """
        ended: queue.Queue[tuple[int, dict[str, Any]] | None] = queue.Queue()
        with self._lock:
            if self.aborted:
                return
            self._wake = ended

        def work(i: int, call: ToolCall) -> None:
            ended.put((i, self._run_one(call, bad.get(call["id"]))))

        try:
            for i, call in enumerate(calls):
                spawn(functools.partial(work, i, call), name=f"ai-sse-tool-{call['name']}")
            pending = set(range(len(calls)))
            deadline = time.monotonic() + self.tool_timeout
            while pending and (left := deadline - time.monotonic()) > 0:
                try:
                    item = ended.get(timeout=left)
                except queue.Empty:
                    break
                if item is None or self.aborted:  # abort() wakes us with None
                    return
                pending.discard(item[0])
                yield item
            message = f"The tool did not answer within {self.tool_timeout:g} seconds."
            for i in sorted(pending):
                yield i, _error(calls[i], "timeout", message)
        finally:
            with self._lock:
                self._wake = None

    def _run_one(self, call: ToolCall, problem: str | None) -> dict[str, Any]:
        tool = self.tools.get(call["name"])
        if tool is None or tool.function is None:
            return _error(call, "unknown_tool", f"No tool named {call['name']!r} is offered.")
        if problem is not None:
            return _error(call, "invalid_arguments", problem)
        mismatch = _arguments_problem(tool, call["arguments"])
        if mismatch is not None:
            return _error(call, "invalid_arguments", mismatch)
        try:
            value = self.invoke(tool.function, call["arguments"])
        except ToolError as exc:
            return _error(call, exc.type, str(exc)[:MAX_ERROR_CHARS])
        except Exception as exc:
            logger.exception("tool %s failed (call %s)", call["name"], call["id"])
            return _error(call, "tool_error", f"The tool failed ({type(exc).__name__}).")
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            value = json.loads(json.dumps(value, default=str))
        return {"id": call["id"], "name": call["name"], "result": value}


def _error(call: ToolCall, kind: str, message: str) -> dict[str, Any]:
    return {"id": call["id"], "name": call["name"], "error": {"type": kind, "message": message}}


def _arguments_problem(tool: Tool, arguments: dict[str, Any]) -> str | None:
    """Why ``arguments`` do not fit the tool's schema, when ``jsonschema`` is there to say."""
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - without the extra the function itself decides
        return None
    error = next(
        iter(jsonschema.Draft202012Validator(tool.parameters).iter_errors(arguments)), None
    )
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path)
    return (
        f"The arguments do not match the schema{' at ' + where if where else ''}: {error.message}"[
            :MAX_ERROR_CHARS
        ]
    )


def _add(a: Usage, b: Usage) -> Usage:
    return Usage(
        a.prompt_tokens + b.prompt_tokens,
        a.completion_tokens + b.completion_tokens,
        a.total_tokens + b.total_tokens,
    )


__all__ = ["StepStream", "ToolError", "check_schema", "parse_output"]


class AnswerChunks(ChunkStream):
    """A whole (non-streamed) answer replayed as chunks: the step loop for ``ask()``."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(provider=answer.provider, model=answer.model)
        self.answer = answer

    def __iter__(self) -> Iterator[Chunk]:
        answer = self.answer
        if answer.reasoning:
            yield Chunk("reasoning", answer.reasoning)
        if answer.text:
            yield Chunk("text", answer.text, model=answer.model)
        for index, call in enumerate(answer.tool_calls):
            arguments = call.get("arguments") or ""
            if not isinstance(arguments, str):
                arguments = json.dumps(arguments)
            yield Chunk(
                "tool_call",
                tool_call=ToolCallDelta(index, call.get("id"), call.get("name"), arguments),
            )
        if answer.finish_reason:
            yield Chunk.finish(answer.finish_reason, answer.raw_finish_reason)
        if answer.usage is not None:
            yield Chunk("usage", usage=answer.usage)

    def close(self) -> None:
        pass


def fold(stream: ChunkStream) -> Answer:
    """Every chunk of ``stream`` folded into one :class:`Answer`."""
    builder = AnswerBuilder(model=stream.model, provider=stream.provider)
    with stream:
        for chunk in stream:
            builder.add(chunk)
    return builder.answer()
