// The browser client in Node: its SSE parser, and (with AI_SSE_URL set to a live server)
// streaming, resume after a dropped connection, re-attach after a "reload", abort.
import assert from "node:assert/strict";
import { test } from "node:test";

import { AIClient, SSEParser } from "../../flask_ai_sse/static/client.js";

function parseAll(pieces) {
  const events = [];
  const retries = [];
  const parser = new SSEParser((e) => events.push(e), { onRetry: (ms) => retries.push(ms) });
  for (const piece of pieces) parser.feed(typeof piece === "string" ? new TextEncoder().encode(piece) : piece);
  return { events, retries, parser };
}

test("parser: LF, CR and CRLF line ends, a CRLF split across chunks", () => {
  const { events } = parseAll(["data: a\n\n", "data: b\r\r", "data: c\r", "\n\r\n", "data: d\r\n\r\n"]);
  assert.deepEqual(events.map((e) => e.data), ["a", "b", "c", "d"]);
});

test("parser: UTF-8 split inside a character", () => {
  const bytes = new TextEncoder().encode('data: {"content":"é🙂"}\n\n');
  const pieces = Array.from(bytes, (b) => new Uint8Array([b]));
  const { events } = parseAll(pieces);
  assert.equal(JSON.parse(events[0].data).content, "é🙂");
});

test("parser: BOM, comments, multi-line data, event names, no-colon fields", () => {
  const { events } = parseAll(["\ufeff: hello\n", "event: start\ndata: 1\ndata:2\n\n", "data\n\n", ": keepalive\n\n"]);
  assert.deepEqual(events, [
    { event: "start", data: "1\n2", id: "" },
    { event: "message", data: "", id: "" },
  ]);
});

test("parser: last event id changes only on dispatch; NUL ids ignored; retry digits only", () => {
  const { events, retries, parser } = parseAll(["id: s:1\ndata: a\n\n", "retry: 3000\n\nretry: 1x\n\n", "id: bad\0\ndata: b\n\n", "id: s:3\ndata: c"]);
  assert.deepEqual(events.map((e) => e.id), ["s:1", "s:1"]);
  assert.deepEqual(retries, [3000]);
  assert.equal(parser.lastEventId, "s:1"); // the unterminated event did not dispatch
  parser.end();
  assert.equal(parser.lastEventId, "s:1");
});

test("parser: a long line in many pieces", () => {
  const text = "x".repeat(100000);
  const pieces = [];
  const line = `data: ${text}\n\n`;
  for (let i = 0; i < line.length; i += 1000) pieces.push(line.slice(i, i + 1000));
  assert.equal(parseAll(pieces).events[0].data, text);
});

// -- against a live server ----------------------------------------------------------------

const URL = process.env.AI_SSE_URL;
const live = { skip: URL ? false : "set AI_SSE_URL to a running server" };

class MemoryStorage {
  constructor() {
    this.items = new Map();
  }
  getItem(key) {
    return this.items.has(key) ? this.items.get(key) : null;
  }
  setItem(key, value) {
    this.items.set(key, String(value));
  }
  removeItem(key) {
    this.items.delete(key);
  }
}

/** A fetch whose first `cuts` stream responses break after `after` bytes, as a dropped network. */
function cuttingFetch({ cuts = 1, after = 400 } = {}) {
  const log = [];
  let left = cuts;
  const fetchImpl = async (url, init = {}) => {
    log.push({ url: String(url), method: init.method ?? "GET", lastEventId: init.headers?.["Last-Event-ID"] ?? null });
    const response = await fetch(url, init);
    const type = response.headers.get("content-type") ?? "";
    if (!type.startsWith("text/event-stream") || left <= 0) return response;
    left -= 1;
    const reader = response.body.getReader();
    let sent = 0;
    const body = new ReadableStream({
      async pull(controller) {
        const { value, done } = await reader.read();
        if (done) return controller.close();
        if (sent + value.length >= after) {
          controller.enqueue(value.subarray(0, Math.max(0, after - sent)));
          reader.cancel().catch(() => {});
          return controller.error(new TypeError("network error"));
        }
        sent += value.length;
        controller.enqueue(value);
      },
    });
    return new Response(body, { status: response.status, headers: response.headers });
  };
  return { fetchImpl, log };
}

test("live: tokens by callback and by iterator, then done", live, async () => {
  const tokens = [];
  const client = new AIClient({ prefix: `${URL}/ai`, storage: null });
  const stream = client.stream({ prompt: "hello" }, { onToken: (t) => tokens.push(t) });
  const types = [];
  for await (const event of stream) types.push(event.type);
  const result = await stream.result;
  assert.equal(types[0], "start");
  assert.equal(types.at(-1), "done");
  assert.equal(result.finishReason, "stop");
  assert.equal(tokens.join(""), result.text);
  assert.ok(result.text.length > 100);
  assert.equal(result.error, null);
});

test("live: a dropped connection resumes with Last-Event-ID, nothing lost or repeated", live, async () => {
  const whole = await new AIClient({ prefix: `${URL}/ai`, storage: null }).stream({ prompt: "hello" }).result;
  const { fetchImpl, log } = cuttingFetch({ cuts: 2, after: 500 });
  const client = new AIClient({ prefix: `${URL}/ai`, storage: null, fetch: fetchImpl, retryDelay: 20 });
  const result = await client.stream({ prompt: "hello" }).result;
  assert.equal(result.error, null);
  assert.equal(result.text, whole.text);
  const attaches = log.filter((r) => r.url.includes("/streams/"));
  assert.equal(attaches.length, 2);
  assert.match(attaches[0].lastEventId, /^[\w-]+:\d+$/);
});

test("live: gives up after maxRetries with a connection_error", live, async () => {
  const { fetchImpl } = cuttingFetch({ cuts: 100, after: 300 });
  const client = new AIClient({ prefix: `${URL}/ai`, storage: null, fetch: fetchImpl, retryDelay: 5, maxRetries: 2 });
  const errors = [];
  const result = await client.stream({ prompt: "hello" }, { onError: (e) => errors.push(e) }).result;
  assert.equal(result.error.type, "connection_error");
  assert.equal(errors.length, 1);
});

test("live: after a reload, resume() replays the running answer from storage", live, async () => {
  const storage = new MemoryStorage();
  const first = new AIClient({ prefix: `${URL}/ai`, storage });
  const stream = first.stream({ prompt: "hello" });
  // "reload": stop reading once a few tokens arrived, leaving the id in storage
  for await (const event of stream) {
    if (event.type === "token" && stream.text.length > 20) break;
  }
  stream.close();
  const saved = first.saved();
  assert.equal(saved.streamId, stream.streamId);
  const second = new AIClient({ prefix: `${URL}/ai`, storage });
  const result = await second.resume().result;
  assert.equal(result.finishReason, "stop");
  assert.ok(result.text.startsWith(stream.text));
  assert.equal(second.saved(), null);
  assert.equal(new AIClient({ storage }).resume(), null);
});

test("live: abort() cancels on the server and ends with finish_reason cancelled", live, async () => {
  const { fetchImpl, log } = cuttingFetch({ cuts: 0 });
  const client = new AIClient({ prefix: `${URL}/ai`, storage: null, fetch: fetchImpl });
  const stream = client.stream({ prompt: "hello" });
  for await (const event of stream) {
    if (event.type === "token") {
      stream.abort();
    }
  }
  const result = await stream.result;
  assert.equal(result.finishReason, "cancelled");
  assert.equal(result.done?.finish_reason, "cancelled"); // the server's own done event
  assert.ok(log.some((r) => r.method === "POST" && r.url.endsWith("/cancel")));
});

test("live: a refused request is an error with the server's type and status", live, async () => {
  const client = new AIClient({ prefix: `${URL}/ai`, storage: null });
  const result = await client.stream({ prompt: "" }).result;
  assert.equal(result.error.status, 400);
  assert.equal(result.error.type, "empty_value");
  const gone = await client.attach("no-such-stream").result;
  assert.equal(gone.error.status, 404);
});
