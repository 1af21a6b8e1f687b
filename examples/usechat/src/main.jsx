import { useChat } from "@ai-sdk/react";
import { DefaultChatTransport } from "ai";
import { useState } from "react";
import { createRoot } from "react-dom/client";

// One chat id per tab, so that a reload resumes the running answer (resume: true calls
// GET /ai/chat/<id>/stream, which replays it from the start).
const chatId = sessionStorage.chatId ?? (sessionStorage.chatId = crypto.randomUUID());

function Chat() {
  const [input, setInput] = useState("");
  const { messages, sendMessage, status, stop, error } = useChat({
    id: chatId,
    resume: true,
    transport: new DefaultChatTransport({ api: "/ai/chat" }),
  });
  return (
    <main style={{ maxWidth: "40rem", margin: "2rem auto", font: "16px/1.5 system-ui" }}>
      {messages.map((message) => (
        <p key={message.id} style={{ whiteSpace: "pre-wrap" }}>
          <b>{message.role}:</b>{" "}
          {message.parts.map((part, i) =>
            part.type === "text" ? (
              <span key={i}>{part.text}</span>
            ) : part.type.startsWith("tool-") ? (
              <code key={i}>
                [{part.type.slice(5)} {JSON.stringify(part.input)} → {JSON.stringify(part.output)}]
              </code>
            ) : null,
          )}
        </p>
      ))}
      {error && <p style={{ color: "crimson" }}>{error.message}</p>}
      <form
        onSubmit={(event) => {
          event.preventDefault();
          if (input.trim()) sendMessage({ text: input });
          setInput("");
        }}
      >
        <input value={input} onChange={(e) => setInput(e.target.value)} placeholder="Ask something" />
        <button type="submit" disabled={status !== "ready"}>Send</button>
        <button type="button" onClick={stop} disabled={status !== "streaming"}>Stop</button>
      </form>
    </main>
  );
}

createRoot(document.getElementById("root")).render(<Chat />);
