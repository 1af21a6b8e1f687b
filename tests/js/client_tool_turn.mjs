// A client-side tool round trip as useChat does it, with the AI SDK's own transport:
// the first turn ends with a tool call; the tool's output is added to the assistant
// message as addToolResult does (state "output-available"), and the messages are sent
// again. Prints both UIMessages as JSON. Usage: AI_SSE_URL=... node client_tool_turn.mjs
import { DefaultChatTransport, readUIMessageStream } from "ai";

const transport = new DefaultChatTransport({ api: `${process.env.AI_SSE_URL}/ai/chat` });
const chatId = `tools-${Date.now()}`;

async function turn(messages) {
  const stream = await transport.sendMessages({
    chatId,
    messages,
    trigger: "submit-message",
    messageId: undefined,
    abortSignal: undefined,
  });
  let message = null;
  for await (const snapshot of readUIMessageStream({ stream })) message = snapshot;
  return message;
}

const user = { id: "u1", role: "user", parts: [{ type: "text", text: "Pick a color" }] };
const first = await turn([user]);
const answered = structuredClone(first);
for (const part of answered.parts) {
  if (part.type === "tool-pick_color" && part.state === "input-available") {
    part.state = "output-available"; // what addToolResult({tool, toolCallId, output}) sets
    part.output = { color: "red" };
  }
}
const second = await turn([user, answered]);
process.stdout.write(JSON.stringify({ first, second }));
