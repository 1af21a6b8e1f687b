// The AI SDK's own DefaultChatTransport (what useChat uses) against a live server:
// sendMessages to POST /chat, reconnectToStream to GET /chat/<id>/stream.
import assert from "node:assert/strict";
import { test } from "node:test";

import { DefaultChatTransport, readUIMessageStream } from "ai";

const URL = process.env.AI_SSE_URL;
const live = { skip: URL ? false : "set AI_SSE_URL to a running server" };

const userMessage = (text) => ({ id: `u-${text}`, role: "user", parts: [{ type: "text", text }] });

async function lastMessage(stream) {
  let message = null;
  for await (const snapshot of readUIMessageStream({ stream })) message = snapshot;
  return message;
}

test("useChat's transport: a turn, then a resume of the running stream", live, async () => {
  const transport = new DefaultChatTransport({ api: `${URL}/ai/chat` });
  const chatId = `chat-${Date.now()}`;
  const stream = await transport.sendMessages({
    chatId,
    messages: [userMessage("hello")],
    trigger: "submit-message",
    messageId: undefined,
    abortSignal: undefined,
  });
  const reader = stream.getReader();
  const first = [];
  while (first.length < 4) first.push((await reader.read()).value);
  assert.deepEqual(first.slice(0, 3).map((c) => c.type), ["start", "start-step", "text-start"]);

  // While it runs, a reconnect (useChat's resume: true) replays it from the start.
  const resumed = await transport.reconnectToStream({ chatId });
  assert.ok(resumed, "the running stream is found");
  const message = await lastMessage(resumed);
  const text = message.parts.filter((p) => p.type === "text").map((p) => p.text).join("");
  assert.match(text, /fake provider/);
  assert.equal(message.metadata.finish_reason, "stop");

  let rest = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    if (value.type === "text-delta") rest += value.delta;
  }
  assert.equal(first[3].delta + rest, text);

  assert.equal(await transport.reconnectToStream({ chatId: "no-such-chat" }), null); // 204
});
