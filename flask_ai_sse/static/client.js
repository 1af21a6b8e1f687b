// flask-ai-sse browser client: an ES module, no build step. Served at <prefix>/client.js.
//
//   import { AIClient } from "/ai/client.js";
//   const ai = new AIClient({ prefix: "/ai" });
//   const stream = ai.stream({ prompt: "Hello" }, { onToken: (t) => (out.textContent += t) });
//   for await (const event of stream) { ... }     // or callbacks, or both
//   const result = await stream.result;           // { text, finishReason, usage, error, ... }
//   stream.abort();                               // cancels the generation on the server
//
// It POSTs with fetch (no URL length limit), parses the event stream itself, resumes a
// dropped connection with Last-Event-ID (bounded tries, exponential backoff), and keeps the
// running stream's id in sessionStorage so that `ai.resume()` re-attaches after a reload.
// It speaks the default protocol; see the "Front ends" page of the docs.

const LINE_END = /\r\n|\r|\n/;

/**
 * Incremental Server-Sent Events parser (WHATWG "event stream interpretation"): CR, LF and
 * CRLF line ends (a CRLF split across chunks too), UTF-8 split across chunks, one leading
 * BOM, comments, `retry`, and the last event id, which changes only when an event is
 * dispatched.
 */
export class SSEParser {
  /** @param {(event: {event: string, data: string, id: string}) => void} onEvent */
  constructor(onEvent, { onRetry = null, onComment = null } = {}) {
    this.onEvent = onEvent;
    this.onRetry = onRetry;
    this.onComment = onComment;
    this.lastEventId = "";
    this._reset();
  }

  _reset() {
    this._decoder = new TextDecoder("utf-8");
    this._started = false;
    this._skipLF = false;
    this._tail = "";
    this._data = [];
    this._event = "";
    this._id = this.lastEventId;
  }

  /** Feed bytes (Uint8Array) or text as they arrive. */
  feed(chunk) {
    let text = typeof chunk === "string" ? chunk : this._decoder.decode(chunk, { stream: true });
    if (!text) return;
    if (!this._started) {
      this._started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    if (this._skipLF) {
      this._skipLF = false;
      if (text[0] === "\n") text = text.slice(1);
    }
    if (!text) return;
    const lines = (this._tail + text).split(LINE_END);
    this._tail = lines.pop();
    // A CR ending the chunk ended a line; an LF opening the next one is the rest of a CRLF.
    this._skipLF = text[text.length - 1] === "\r";
    for (const line of lines) this._line(line);
  }

  /** End of a connection: an unterminated last event is discarded, as WHATWG says. */
  end() {
    this._decoder.decode();
    this._reset();
  }

  _line(line) {
    if (line === "") {
      this.lastEventId = this._id;
      const data = this._data;
      const event = this._event;
      this._data = [];
      this._event = "";
      if (data.length) this.onEvent({ event: event || "message", data: data.join("\n"), id: this._id });
      return;
    }
    const colon = line.indexOf(":");
    if (colon === 0) {
      if (this.onComment) this.onComment(line.slice(line[1] === " " ? 2 : 1));
      return;
    }
    let name = line;
    let value = "";
    if (colon > 0) {
      name = line.slice(0, colon);
      value = line.slice(colon + (line[colon + 1] === " " ? 2 : 1));
    }
    if (name === "data") this._data.push(value);
    else if (name === "event") this._event = value;
    else if (name === "id") {
      if (!value.includes("\0")) this._id = value;
    } else if (name === "retry" && /^[0-9]+$/.test(value) && this.onRetry) this.onRetry(Number(value));
  }
}

/** An error of the stream or the request: `type` and `message` as the server sent them. */
export class AIStreamError extends Error {
  constructor(type, message, status = null) {
    super(message);
    this.name = "AIStreamError";
    this.type = type;
    this.status = status;
  }
}

const NAMED = new Set(["start", "reasoning", "tool_call", "tool_call_delta", "tool_result", "progress", "done", "error"]);
const CALLBACKS = {
  start: "onStart",
  token: "onToken",
  reasoning: "onReasoning",
  tool_call: "onToolCall",
  tool_call_delta: "onToolCallDelta",
  tool_result: "onToolResult",
  progress: "onProgress",
  done: "onDone",
  error: "onError",
};

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });

/**
 * One streamed answer. Events: `start`, `token` (text), `reasoning` (text), `tool_call`,
 * `tool_call_delta`, `tool_result`, `progress`, `done`, `error`; each as a callback
 * (`onToken(text, event)`, ...) and as `{type, data, id}` from the async iterator.
 * The iterator ends after `done` or `error`.
 */
export class AIStream {
  constructor(client, handlers = {}) {
    this.client = client;
    this.handlers = handlers;
    /** The server's stream id, once `start` arrived (or the one resumed). */
    this.streamId = null;
    /** The id of the last event received: where a resume continues. */
    this.lastEventId = "";
    this.text = "";
    this.reasoning = "";
    this.toolCalls = [];
    this.toolResults = [];
    this.ended = false;
    this._queue = [];
    this._waiters = [];
    this._controller = new AbortController();
    this._aborted = false;
    this._savedAt = 0; // storage is written at most every 250 ms, not per token
    let settle;
    /** Resolves once the stream ended, however: never rejects. */
    this.result = new Promise((resolve) => (settle = resolve));
    this._settle = settle;
  }

  [Symbol.asyncIterator]() {
    return {
      next: () => {
        if (this._queue?.length) return Promise.resolve({ value: this._queue.shift(), done: false });
        if (this.ended) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => this._waiters.push(resolve));
      },
      // Leaving a for-await loop stops iterating, not the stream: callbacks and
      // `result` go on (use close() or abort() to stop it).
      return: () => {
        this._queue = null;
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }

  _emit(type, data, id) {
    const item = { type, data, id };
    const callback = this.handlers[CALLBACKS[type]];
    if (callback) {
      try {
        callback(type === "token" || type === "reasoning" ? data.content : data, item);
      } catch (error) {
        console.error("flask-ai-sse: a callback failed", error);
      }
    }
    const waiter = this._waiters.shift();
    if (waiter) waiter({ value: item, done: false });
    else if (this._queue) this._queue.push(item);
  }

  /** What the stream's promise settles with: what arrived, and how it ended. */
  _summary(ending = {}) {
    return {
      streamId: this.streamId,
      text: this.text,
      reasoning: this.reasoning,
      toolCalls: this.toolCalls,
      toolResults: this.toolResults,
      finishReason: null,
      usage: null,
      done: null,
      error: null,
      ...ending,
    };
  }

  _finish(summary) {
    if (this.ended) return;
    this.ended = true;
    this.client._forget(this);
    for (const waiter of this._waiters.splice(0)) waiter({ value: undefined, done: true });
    this._settle(this._summary(summary));
    this.handlers.onEnd?.();
  }

  _fail(error) {
    if (this.ended) return;
    this._emit("error", { error: { type: error.type, message: error.message } }, this.lastEventId);
    this._finish({ error });
  }

  /** Handle one parsed SSE event; returns true at the stream's end (`[DONE]`). */
  _event({ event, data, id }) {
    if (data === "[DONE]") return true;
    this.lastEventId = id;
    let payload;
    try {
      payload = JSON.parse(data);
    } catch {
      return false; // not ours: ignore it, as EventSource would leave it to the page
    }
    if (event === "message") {
      this.text += payload.content;
      this._emit("token", payload, id);
    } else if (NAMED.has(event)) {
      if (event === "start") {
        this.streamId = payload.stream_id;
        this.client._remember(this);
      } else if (event === "reasoning") this.reasoning += payload.content;
      else if (event === "tool_call") this.toolCalls.push(payload);
      else if (event === "tool_result") this.toolResults.push(payload);
      this._emit(event, payload, id);
      if (event === "done") {
        this._finish({ finishReason: payload.finish_reason, usage: payload.usage ?? null, done: payload });
      } else if (event === "error") {
        const error = new AIStreamError(payload.error?.type ?? "error", payload.error?.message ?? "Error.");
        this._finish({ error });
      }
    }
    if (event !== "start" && Date.now() - this._savedAt > 250) this.client._remember(this);
    return false;
  }

  /**
   * Stop the generation: the server cancels it and the stream ends with `done`
   * (`finish_reason: "cancelled"`). Before the stream has an id, or when the server
   * cannot be told, the connection is closed here.
   */
  async abort() {
    if (this.ended || this._aborted) return;
    this._aborted = true;
    this.client._forget(this);
    let told = false;
    if (this.streamId) {
      try {
        const response = await this.client._fetch(
          `${this.client.prefix}/streams/${encodeURIComponent(this.streamId)}/cancel`,
          // A JSON body: a request only a page the CORS policy admits can send, so the
          // server takes it for no cross-site forgery (docs/security.rst).
          {
            method: "POST",
            keepalive: true,
            headers: { "Content-Type": "application/json" },
            body: "{}",
          },
        );
        told = response.ok;
      } catch {
        told = false;
      }
    }
    if (told) {
      // The server's `done` should follow at once; never wait for it forever.
      setTimeout(() => this._abortHere(), this.client.abortTimeout);
    } else {
      this._abortHere();
    }
  }

  /**
   * Stop reading here and leave the generation running on the server, as a page that
   * unloads does: the stream stays in storage for `resume()`.
   */
  close() {
    if (this.ended) return;
    this.ended = true;
    this._controller.abort();
    for (const waiter of this._waiters.splice(0)) waiter({ value: undefined, done: true });
    this._settle(this._summary());
  }

  _abortHere() {
    if (this.ended) return;
    this._controller.abort();
    this._finish({ finishReason: "cancelled" });
  }
}

/** The client of one flask-ai-sse blueprint. */
export class AIClient {
  /**
   * @param {object} [options]
   * @param {string} [options.prefix] where the blueprint is mounted (`AI_SSE_URL_PREFIX`)
   * @param {object} [options.headers] sent with every request (e.g. a CSRF token)
   * @param {RequestCredentials} [options.credentials]
   * @param {number} [options.maxRetries] reconnections in a row before giving up
   * @param {number} [options.retryDelay] first wait before reconnecting, in ms; doubles
   * @param {number} [options.maxRetryDelay] longest wait, in ms
   * @param {Storage|null} [options.storage] where the running stream is kept for `resume()`
   * @param {string} [options.storageKey]
   * @param {typeof fetch} [options.fetch]
   */
  constructor({
    prefix = "/ai",
    headers = {},
    credentials = "same-origin",
    maxRetries = 5,
    retryDelay = 500,
    maxRetryDelay = 8000,
    storage = globalThis.sessionStorage ?? null,
    storageKey = "flask-ai-sse:stream",
    fetch = globalThis.fetch.bind(globalThis),
    abortTimeout = 5000,
  } = {}) {
    this.prefix = prefix.replace(/\/+$/, "");
    this.headers = headers;
    this.credentials = credentials;
    this.maxRetries = maxRetries;
    this.retryDelay = retryDelay;
    this.maxRetryDelay = maxRetryDelay;
    this.storage = storage;
    this.storageKey = storageKey;
    this.fetchImpl = fetch;
    this.abortTimeout = abortTimeout;
  }

  /**
   * Start a stream: `body` is what `POST <prefix>/stream` takes (`prompt` or `messages`,
   * `system`, `model`, `temperature`, `max_tokens`, `conversation_id`).
   */
  stream(body, handlers = {}) {
    const stream = new AIStream(this, handlers);
    this._run(stream, () =>
      this._fetch(`${this.prefix}/stream`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
        signal: stream._controller.signal,
      }),
    );
    return stream;
  }

  /**
   * Follow a running or recently finished stream by id: from its start, or after
   * `lastEventId`.
   */
  attach(streamId, handlers = {}, { lastEventId = "" } = {}) {
    const stream = new AIStream(this, handlers);
    stream.streamId = streamId;
    stream.lastEventId = lastEventId;
    this._run(stream, null);
    return stream;
  }

  /**
   * After a page reload: re-attach to the stream that was running, or `null`. By default
   * the answer is replayed from its start (the page lost what it showed);
   * `{fromStart: false}` continues after the last event seen instead.
   */
  resume(handlers = {}, { fromStart = true } = {}) {
    const saved = this.saved();
    if (!saved) return null;
    return this.attach(saved.streamId, handlers, { lastEventId: fromStart ? "" : saved.lastEventId });
  }

  /** The running stream kept in storage: `{streamId, lastEventId}` or `null`. */
  saved() {
    try {
      const raw = this.storage?.getItem(this.storageKey);
      const saved = raw ? JSON.parse(raw) : null;
      return saved && typeof saved.streamId === "string" ? saved : null;
    } catch {
      return null;
    }
  }

  _remember(stream) {
    if (!this.storage || !stream.streamId || stream.ended || stream._aborted) return;
    stream._savedAt = Date.now();
    try {
      this.storage.setItem(
        this.storageKey,
        JSON.stringify({ streamId: stream.streamId, lastEventId: stream.lastEventId }),
      );
    } catch {
      // storage full or refused: resuming after a reload is a nicety
    }
  }

  _forget(stream) {
    const saved = this.saved();
    if (saved && saved.streamId === stream.streamId) this.storage.removeItem(this.storageKey);
  }

  _fetch(url, init = {}) {
    return this.fetchImpl(url, {
      credentials: this.credentials,
      ...init,
      headers: { ...this.headers, ...(init.headers ?? {}) },
    });
  }

  _attachRequest(stream) {
    const headers = { Accept: "text/event-stream" };
    if (stream.lastEventId) headers["Last-Event-ID"] = stream.lastEventId;
    return this._fetch(`${this.prefix}/streams/${encodeURIComponent(stream.streamId)}`, {
      headers,
      signal: stream._controller.signal,
    });
  }

  async _run(stream, open) {
    let failures = 0;
    let request = open;
    for (;;) {
      if (stream.ended) return;
      let response = null;
      try {
        response = await (request ? request() : this._attachRequest(stream));
      } catch (error) {
        response = null; // the network: try again below, if there is a stream to resume
      }
      request = null;
      if (response && !response.ok) {
        // Refused before streaming (4xx/5xx with the JSON error body): final.
        let body = null;
        try {
          body = await response.json();
        } catch {
          body = null;
        }
        const error = body?.error ?? {};
        stream._fail(new AIStreamError(error.type ?? "http_error", error.message ?? response.statusText, response.status));
        return;
      }
      if (response) {
        let progressed = false;
        try {
          progressed = await this._read(stream, response);
        } catch {
          progressed = stream.ended; // the connection broke mid-stream
        }
        if (stream.ended) return;
        if (progressed) failures = 0;
      }
      if (stream._aborted) {
        stream._abortHere();
        return;
      }
      if (!stream.streamId) {
        stream._fail(new AIStreamError("connection_error", "The connection failed before the stream started."));
        return;
      }
      failures += 1;
      if (failures > this.maxRetries) {
        stream._fail(new AIStreamError("connection_error", "The connection was lost and could not be resumed."));
        return;
      }
      const delay = Math.min(this.maxRetryDelay, this.retryDelay * 2 ** (failures - 1));
      await sleep(delay * (0.75 + Math.random() / 4), stream._controller.signal);
    }
  }

  /** Read one response's events; true if any arrived. Ends the stream at `[DONE]`. */
  async _read(stream, response) {
    let progressed = false;
    let finished = false;
    const parser = new SSEParser((event) => {
      progressed = true;
      if (stream._event(event)) finished = true;
    });
    const reader = response.body.getReader();
    try {
      while (!finished && !stream.ended) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.feed(value);
      }
    } finally {
      parser.end();
      if (!finished) reader.cancel().catch(() => {});
    }
    if (finished && !stream.ended) stream._finish({});
    return progressed;
  }
}
