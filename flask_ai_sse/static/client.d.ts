// Types of the flask-ai-sse browser client (client.js beside this file).

export interface SSEMessage {
  /** The event name; "message" for unnamed events. */
  event: string;
  data: string;
  /** The last event id in force when the event was dispatched ("" when none). */
  id: string;
}

export declare class SSEParser {
  constructor(
    onEvent: (event: SSEMessage) => void,
    options?: { onRetry?: (ms: number) => void; onComment?: (text: string) => void },
  );
  /** The id of the last dispatched event: what to send as Last-Event-ID. */
  lastEventId: string;
  feed(chunk: Uint8Array | string): void;
  end(): void;
}

export declare class AIStreamError extends Error {
  constructor(type: string, message: string, status?: number | null);
  /** The server's error type (`rate_limited`, `provider_error`, `not_found`, ...), or
   * `connection_error` / `http_error` from the client itself. */
  type: string;
  /** The HTTP status of a request refused before streaming. */
  status: number | null;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface StartData {
  stream_id: string;
  model: string;
  provider: string;
  conversation_id?: string;
  message_id?: string | number;
  [key: string]: unknown;
}

export interface DoneData {
  finish_reason: string;
  raw_finish_reason?: string | null;
  usage: Usage | null;
  model?: string;
  provider?: string;
  stream_id?: string;
  [key: string]: unknown;
}

export interface ToolCall {
  id: string;
  name: string;
  arguments: unknown;
}

export interface ToolCallDelta {
  id?: string | null;
  name?: string | null;
  index?: number;
  arguments: string;
}

export interface ToolResult {
  id: string;
  name: string;
  result?: unknown;
  error?: { type: string; message: string };
}

export interface ErrorData {
  error: { type: string; message: string };
}

export interface EventMap {
  start: StartData;
  token: { content: string };
  reasoning: { content: string };
  tool_call: ToolCall;
  tool_call_delta: ToolCallDelta;
  tool_result: ToolResult;
  progress: Record<string, unknown>;
  done: DoneData;
  error: ErrorData;
}

export type StreamEvent = {
  [K in keyof EventMap]: { type: K; data: EventMap[K]; id: string };
}[keyof EventMap];

export interface Handlers {
  onStart?(data: StartData, event: StreamEvent): void;
  onToken?(text: string, event: StreamEvent): void;
  onReasoning?(text: string, event: StreamEvent): void;
  onToolCall?(call: ToolCall, event: StreamEvent): void;
  onToolCallDelta?(delta: ToolCallDelta, event: StreamEvent): void;
  onToolResult?(result: ToolResult, event: StreamEvent): void;
  onProgress?(data: Record<string, unknown>, event: StreamEvent): void;
  onDone?(data: DoneData, event: StreamEvent): void;
  onError?(data: ErrorData, event: StreamEvent): void;
  /** After the stream ended, however it ended. */
  onEnd?(): void;
}

export interface StreamResult {
  streamId: string | null;
  text: string;
  reasoning: string;
  toolCalls: ToolCall[];
  toolResults: ToolResult[];
  /** `cancelled` after `abort()`. */
  finishReason: string | null;
  usage: Usage | null;
  done: DoneData | null;
  error: AIStreamError | null;
}

export interface StreamBody {
  prompt?: string;
  messages?: { role: "system" | "user" | "assistant"; content: string | unknown[] }[];
  system?: string;
  model?: string;
  temperature?: number;
  max_tokens?: number;
  conversation_id?: string;
  [key: string]: unknown;
}

export declare class AIStream implements AsyncIterable<StreamEvent> {
  readonly streamId: string | null;
  readonly lastEventId: string;
  readonly text: string;
  readonly reasoning: string;
  readonly toolCalls: ToolCall[];
  readonly toolResults: ToolResult[];
  readonly ended: boolean;
  /** Resolves once the stream ended, however; never rejects. */
  readonly result: Promise<StreamResult>;
  [Symbol.asyncIterator](): AsyncIterator<StreamEvent>;
  /** Cancel the generation on the server (`POST <prefix>/streams/<id>/cancel`). */
  abort(): Promise<void>;
  /** Stop reading and leave the generation running (kept in storage for resume()). */
  close(): void;
}

export interface ClientOptions {
  /** Where the blueprint is mounted (AI_SSE_URL_PREFIX). Default "/ai". */
  prefix?: string;
  headers?: Record<string, string>;
  credentials?: RequestCredentials;
  /** Reconnections in a row before giving up. Default 5. */
  maxRetries?: number;
  /** First wait before reconnecting, in ms; doubles each time. Default 500. */
  retryDelay?: number;
  /** Longest wait, in ms. Default 8000. */
  maxRetryDelay?: number;
  /** Where the running stream is kept for resume() (null: nowhere). Default sessionStorage. */
  storage?: Pick<Storage, "getItem" | "setItem" | "removeItem"> | null;
  storageKey?: string;
  fetch?: typeof fetch;
  /** How long abort() waits for the server's `done` before closing the connection. */
  abortTimeout?: number;
}

export declare class AIClient {
  constructor(options?: ClientOptions);
  readonly prefix: string;
  stream(body: StreamBody, handlers?: Handlers): AIStream;
  attach(streamId: string, handlers?: Handlers, options?: { lastEventId?: string }): AIStream;
  /** Re-attach after a reload to the stream kept in storage, or null. */
  resume(handlers?: Handlers, options?: { fromStart?: boolean }): AIStream | null;
  saved(): { streamId: string; lastEventId: string } | null;
}
