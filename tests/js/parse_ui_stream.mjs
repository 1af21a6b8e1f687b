// Feeds a UI message stream (SSE bytes on stdin) to the `ai` package as useChat reads it:
// parseJsonEventStream with uiMessageChunkSchema, then readUIMessageStream. Prints JSON:
// {"chunks": [types...], "invalid": [errors...], "message": <the last UIMessage>, "errors": [...]}.
import { parseJsonEventStream, readUIMessageStream, uiMessageChunkSchema } from "ai";

const input = [];
for await (const piece of process.stdin) input.push(piece);
const bytes = Buffer.concat(input);
// Split into small pieces, so the parser sees events cut anywhere.
const stream = new ReadableStream({
  start(controller) {
    for (let i = 0; i < bytes.length; i += 7) controller.enqueue(new Uint8Array(bytes.subarray(i, i + 7)));
    controller.close();
  },
});
const chunks = [];
const invalid = [];
const errors = [];
const parsed = parseJsonEventStream({ stream, schema: uiMessageChunkSchema }).pipeThrough(
  new TransformStream({
    transform(result, controller) {
      if (!result.success) {
        invalid.push(String(result.error));
        return;
      }
      chunks.push(result.value.type);
      controller.enqueue(result.value);
    },
  }),
);
let message = null;
for await (const snapshot of readUIMessageStream({ stream: parsed, onError: (e) => errors.push(String(e)) })) {
  message = snapshot;
}
process.stdout.write(JSON.stringify({ chunks, invalid, errors, message }));
