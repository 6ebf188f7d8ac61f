"""A fault-injecting cloud API on loopback that speaks the real wire formats: OpenAI chat
completions and Anthropic Messages, both as server-sent events.

Each request takes the next step of ``script`` (then "ok" forever): "ok", "429", "500", "cut"
(closes the connection mid-stream), "hang" (answers nothing for 10 s), "malformed" (a broken
JSON event), "400" or "echo401" (a 401 whose message echoes the Authorization header back, as
some providers' "Incorrect API key provided: ..." do). Every request's path, headers and body are kept for assertions.
``delay`` seconds pass between streamed events, as a real model's tokens do.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANSWER = ["The ", "capital ", "of ", "France ", "is ", "Paris."]


class FakeCloud:
    def __init__(self, script: list[str] | None = None, delay: float = 0.0, answer=None) -> None:
        """``answer(body)``, when given, chooses each answer from the request: its text pieces, or
        {"text": [pieces], "calls": [{"id", "name", "arguments": [JSON fragments]}]} for an
        answer that calls tools (streamed as each API streams calls)."""
        self.script = list(script or [])
        self.answer = answer
        self.delay = delay
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def next_step(self) -> str:
        with self.lock:
            return self.script.pop(0) if self.script else "ok"

    def _handler(self):
        cloud = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def handle(self):
                try:
                    super().handle()
                except ConnectionError:
                    pass  # the client went away mid-answer (a killed process): not the server's fault

            def do_POST(self):
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                cloud.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                step = cloud.next_step()
                if step in ("429", "500", "400"):
                    payload = json.dumps({"error": {"message": f"injected {step}"}}).encode()
                    self.send_response(int(step))
                    if step == "429":
                        self.send_header("retry-after", "0.05")
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if step == "echo401":
                    echoed = self.headers.get("authorization") or self.headers.get("x-api-key") or ""
                    payload = json.dumps({"error": {"message": f"Incorrect API key provided: {echoed}"}})
                    self.send_response(401)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload.encode())))
                    self.end_headers()
                    self.wfile.write(payload.encode())
                    return
                if step == "hang":
                    time.sleep(10)
                    return
                anthropic = self.path.endswith("/messages")
                pieces = cloud.answer(body) if cloud.answer else ANSWER
                calls: list[dict] = []
                if isinstance(pieces, dict):
                    pieces, calls = pieces.get("text", []), pieces.get("calls", [])
                if not anthropic and body.get("stream") is False:  # a whole answer, as JSON
                    payload = json.dumps(_openai_whole(pieces, body.get("model", "?"), calls)).encode()
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                events = (
                    _anthropic(pieces, calls) if anthropic else _openai(pieces, body.get("model", "?"), calls)
                )
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("connection", "close")
                self.end_headers()
                for index, event in enumerate(events):
                    if step == "cut" and index == 3:
                        self.wfile.flush()
                        self.connection.shutdown(2)  # the connection drops mid-answer
                        return
                    if step == "malformed" and index == 2:
                        event = "data: {not json\n\n"
                    self.wfile.write(event.encode())
                    self.wfile.flush()
                    if cloud.delay:
                        time.sleep(cloud.delay)
                self.close_connection = True

        return Handler


def _openai(pieces: list[str], model: str, calls: list[dict] = ()) -> list[str]:
    chunks = [
        {"choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}], "model": model}
        for p in pieces
    ]
    for index, call in enumerate(calls):
        # as OpenAI streams a call: its index, id, type and name first, then argument fragments
        first = {
            "index": index,
            "id": call["id"],
            "type": "function",
            "function": {"name": call["name"], "arguments": ""},
        }
        chunks.append({"choices": [{"index": 0, "delta": {"tool_calls": [first]}, "finish_reason": None}]})
        for fragment in call["arguments"]:
            delta = {"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}
            chunks.append({"choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
    finish = "tool_calls" if calls else "stop"
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}], "model": model})
    chunks.append({"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": len(pieces)}})
    return [f"data: {json.dumps(c)}\n\n" for c in chunks] + ["data: [DONE]\n\n"]


def _openai_whole(pieces: list[str], model: str, calls: list[dict] = ()) -> dict:
    message: dict = {"role": "assistant", "content": "".join(pieces) or None}
    if calls:
        message["tool_calls"] = [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": "".join(c["arguments"])},
            }
            for c in calls
        ]
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": len(pieces), "total_tokens": 11 + len(pieces)},
    }


def _anthropic(pieces: list[str], calls: list[dict] = ()) -> list[str]:
    events = [
        {"type": "message_start", "message": {"usage": {"input_tokens": 11, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ]
    events += [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}
        for p in pieces
    ]
    events.append({"type": "content_block_stop", "index": 0})
    for index, call in enumerate(calls, start=1):
        block = {"type": "tool_use", "id": call["id"], "name": call["name"], "input": {}}
        events.append({"type": "content_block_start", "index": index, "content_block": block})
        events += [
            {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "input_json_delta", "partial_json": f},
            }
            for f in call["arguments"]
        ]
        events.append({"type": "content_block_stop", "index": index})
    events += [
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use" if calls else "end_turn"},
            "usage": {"output_tokens": len(pieces)},
        },
        {"type": "message_stop"},
    ]
    return [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events]
