import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// In development, /ai goes to the Flask app (examples/chat serves it on port 8000).
export default defineConfig({
  plugins: [react()],
  server: { proxy: { "/ai": process.env.FLASK_URL ?? "http://127.0.0.1:8000" } },
});
