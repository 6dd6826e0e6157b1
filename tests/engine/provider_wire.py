"""A loopback HTTP server that answers as a model provider would, from canned wire JSON.

Each provider's answers below follow its published API reference (OpenAI chat completions,
Anthropic Messages, Gemini ``generateContent``, Ollama ``/api/chat``), so the official SDK parses
real wire bytes: these tests exercise the SDK's own HTTP, JSON and error code paths, not a mock.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


class ProviderServer:
    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.requests: list[tuple[str, dict[str, Any]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b"{}"
                server.requests.append((self.path, json.loads(raw or b"{}")))
                reply = server.replies.pop(0) if server.replies else Reply(500, {"error": "no reply queued"})
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                body = json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(body)))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (the timeout case)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        self._thread = threading.Thread(target=self._http.serve_forever, args=(0.02,), daemon=True)

    def __enter__(self) -> ProviderServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()


def serve() -> Iterator[ProviderServer]:
    with ProviderServer() as server:
        yield server


# --- each provider's wire format --------------------------------------------------------------------
# calls: (name, arguments as the JSON text the model produced)

def openai_reply(text: str | None, calls: list[tuple[str, str]], usage: tuple[int, int]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    if calls:
        message["tool_calls"] = [{"id": f"call_{i}", "type": "function",
                                  "function": {"name": n, "arguments": a}} for i, (n, a) in enumerate(calls)]
    return {"id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "object": "chat.completion", "created": 1741569952,
            "model": "gpt-4.1-mini-2025-04-14", "choices": [{"index": 0, "message": message, "logprobs": None,
                                                              "finish_reason": "tool_calls" if calls else "stop"}],
            "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)},
            "service_tier": "default"}


def openai_error(status: int, message: str) -> dict[str, Any]:
    kind = {429: "rate_limit_exceeded", 401: "invalid_api_key"}.get(status, "server_error")
    return {"error": {"message": message, "type": "requests" if status == 429 else kind, "param": None,
                      "code": kind}}


def anthropic_reply(text: str | None, calls: list[tuple[str, str]], usage: tuple[int, int]) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    content += [{"type": "tool_use", "id": f"toolu_0{i}", "name": n, "input": json.loads(a)}
                for i, (n, a) in enumerate(calls)]
    return {"id": "msg_01Aq9w938a90dw8q", "type": "message", "role": "assistant", "model": "claude-sonnet-5-5",
            "content": content, "stop_reason": "tool_use" if calls else "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": usage[0], "output_tokens": usage[1]}}


def anthropic_error(status: int, message: str) -> dict[str, Any]:
    kind = {429: "rate_limit_error", 401: "authentication_error", 529: "overloaded_error",
            400: "invalid_request_error"}.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def gemini_reply(text: str | None, calls: list[tuple[str, str]], usage: tuple[int, int]) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"text": text}] if text else []
    parts += [{"functionCall": {"name": n, "args": json.loads(a)}} for n, a in calls]
    return {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": usage[0], "candidatesTokenCount": usage[1],
                              "totalTokenCount": sum(usage)},
            "modelVersion": "gemini-2.5-flash", "responseId": "abc123"}


def gemini_error(status: int, message: str) -> dict[str, Any]:
    kind = {429: "RESOURCE_EXHAUSTED", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 400: "INVALID_ARGUMENT",
            503: "UNAVAILABLE"}.get(status, "INTERNAL")
    return {"error": {"code": status, "message": message, "status": kind}}


def ollama_reply(text: str | None, calls: list[tuple[str, str]], usage: tuple[int, int]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text or ""}
    if calls:
        message["tool_calls"] = [{"function": {"name": n, "arguments": json.loads(a)}} for n, a in calls]
    return {"model": "llama3.1", "created_at": "2026-11-23T10:00:00.000000Z", "message": message, "done": True,
            "done_reason": "stop", "total_duration": 4883583458, "load_duration": 1334875,
            "prompt_eval_count": usage[0], "prompt_eval_duration": 342546000, "eval_count": usage[1],
            "eval_duration": 4535599000}


def ollama_error(status: int, message: str) -> dict[str, Any]:
    return {"error": message}
