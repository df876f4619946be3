"""A small fake LLM server on 127.0.0.1 for tests and benchmarks: Ollama's API plus an OpenAI-compatible route.

Routes: ``POST /api/chat`` (Ollama; ``"stream": false`` -> one JSON reply, otherwise NDJSON chunks as
Ollama sends them), ``GET /api/tags``, ``GET /api/version``, ``POST /v1/chat/completions`` (OpenAI; SSE
when ``"stream": true``) and ``GET /v1/models``.

The reply content comes from ``responder(request) -> str | JSON value`` (default: an instance of the
requested JSON Schema, see ``example_from_schema``). Faults are scripted per chat request, in order::

    fake.add_faults("http_500", "not_json")   # the next two chat requests fail, then replies are normal

``http_500`` (HTTP 500), ``not_json`` (content that is not JSON), ``bad_schema`` (valid JSON that fits no
requested schema), ``slow`` (waits ``slow_s`` before replying: past a short client timeout), ``drop``
(closes the connection without a reply), ``bad_body`` (HTTP 200 whose body is not JSON), ``die`` (the
server stops: this request and those in flight get no reply, later ones "connection refused"). "Connection
refused" is a stopped server (``stop()``; ``start()`` again binds the same port) or ``free_port()``.

Every request is recorded (``requests``, ``chat_requests``) and ``max_in_flight`` counts overlapping chat
requests. ``delay_s`` delays every chat reply (benchmarks: a teacher of known speed); ``parallel`` caps the
replies it works on at once, as a real server's batch does (the others wait their turn)::

    with FakeOllama(delay_s=0.1, parallel=2) as url:
        teacher = OllamaTeacher(model="fake", host=url, ...)
"""
from __future__ import annotations

import collections
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULTS = ("http_500", "not_json", "bad_schema", "slow", "drop", "bad_body", "die")
NOT_JSON_CONTENT = "Sure! Here is what you asked for, more or less."
BAD_SCHEMA_CONTENT = '{"unexpected": true}'
DATE_EXAMPLE = "2024-03-05"


@dataclass
class ChatRequest:
    """One chat request as the server saw it."""
    path: str
    body: dict[str, Any]
    received_at: float = field(default_factory=time.monotonic)

    @property
    def api(self) -> str:
        return "ollama" if self.path.startswith("/api/") else "openai"

    @property
    def model(self) -> str:
        return str(self.body.get("model", ""))

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages") or [])

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.body.get("options") or {})

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream", self.api == "ollama"))  # Ollama streams unless told not to

    @property
    def schema(self) -> dict[str, Any] | None:
        """The JSON Schema the client asked the reply to follow, if any."""
        if self.api == "ollama":
            fmt = self.body.get("format")
            return fmt if isinstance(fmt, dict) else None
        response_format = self.body.get("response_format") or {}
        if response_format.get("type") == "json_schema":
            return (response_format.get("json_schema") or {}).get("schema")
        return None

    @property
    def prompt_chars(self) -> int:
        return sum(len(m.get("content") or "") for m in self.messages)

    @property
    def task(self) -> str | None:
        """"spec" | "pairs" | "verdict" for this project's teacher requests, else None."""
        keys = set((self.schema or {}).get("properties", {}))
        system = " ".join(m.get("content") or "" for m in self.messages if m.get("role") == "system")
        for task, key in (("verdict", "accept"), ("pairs", "pairs"), ("spec", "fields")):
            if key in keys or f'"{key}"' in system:
                return task
        return None


Responder = Callable[[ChatRequest], Any]


def _resolve(ref: str, root: dict[str, Any]) -> dict[str, Any]:
    node: Any = root
    for part in ref.lstrip("#/").split("/"):
        if part:
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def example_from_schema(schema: dict[str, Any], root: dict[str, Any] | None = None, salt: str = "") -> Any:
    """A small instance of a JSON Schema (the subset this project uses): required keys only, first enum
    value / anyOf branch, minimal arrays with distinct strings."""
    root = schema if root is None else root
    if "$ref" in schema:
        return example_from_schema(_resolve(schema["$ref"], root), root, salt)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return example_from_schema(schema[key][0], root, salt)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties", {})
        return {k: example_from_schema(props.get(k, {}), root, salt) for k in schema.get("required", [])}
    if kind == "array":
        count = max(1, int(schema.get("minItems", 1)))
        return [example_from_schema(schema.get("items", {}), root, f"{salt}{i or ''}") for i in range(count)]
    if kind == "string":
        if "pattern" in schema and "\\d{4}" in schema["pattern"]:
            return DATE_EXAMPLE
        return ("x" + salt).ljust(int(schema.get("minLength", 1)), "x")
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1.0))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return {}


def schema_responder(request: ChatRequest) -> Any:
    """Default responder: an instance of the requested schema ({} when none was requested)."""
    schema = request.schema
    return example_from_schema(schema) if schema else {}


def free_port() -> int:
    """A port nothing listens on (it was free a moment ago): "connection refused" for clients."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait for a handler that is sleeping through a "slow" fault
    request_queue_size = 256  # the default 5 drops concurrent connects (the client then waits 1 s to retry)


class FakeOllama:
    """The fake server. ``with FakeOllama(...) as url`` starts it and yields its base URL."""

    def __init__(self, responder: Responder | None = None, *, delay_s: float = 0.0, slow_s: float = 2.0,
                 models: list[str] | None = None, reject_json_schema: bool = False, port: int = 0,
                 parallel: int | None = None):
        self.responder: Responder = responder or schema_responder
        self.delay_s = delay_s
        self._slots = threading.BoundedSemaphore(parallel) if parallel else None
        self.slow_s = slow_s
        self.models = models  # None: any model exists (and /api/tags lists none)
        self.reject_json_schema = reject_json_schema  # the OpenAI route answers 400 to json_schema
        self.port = port
        self.faults: collections.deque[str] = collections.deque()
        self.requests: list[dict[str, Any]] = []
        self.chat_requests: list[ChatRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # --- lifecycle ------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_url(self) -> str:
        return f"{self.url}/v1"

    def start(self) -> str:
        """Listen on 127.0.0.1 (the same port again after a stop()); returns the base URL."""
        if self._server is not None:
            return self.url
        self._stopping = threading.Event()
        self._server = _Server(("127.0.0.1", self.port), _handler_for(self))
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"fake-ollama-{self.port}", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop listening: clients now get "connection refused"."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # --- scripting ------------------------------------------------------------------------------------

    def add_faults(self, *names: str) -> None:
        unknown = [n for n in names if n not in FAULTS]
        if unknown:
            raise ValueError(f"unknown fault(s) {unknown}; known: {FAULTS}")
        with self._lock:
            self.faults.extend(names)

    def _knows(self, model: str) -> bool:
        return self.models is None or model in self.models or f"{model}:latest" in self.models

    def _begin(self, request: ChatRequest, may_fault: bool) -> str | None:
        with self._lock:
            self.chat_requests.append(request)
            fault = self.faults.popleft() if (may_fault and self.faults) else None
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return fault

    def _end(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def _content(self, request: ChatRequest, fault: str | None) -> str:
        if fault == "not_json":
            return NOT_JSON_CONTENT
        if fault == "bad_schema":
            return BAD_SCHEMA_CONTENT
        reply = self.responder(request)
        return reply if isinstance(reply, str) else json.dumps(reply, ensure_ascii=False)


def _handler_for(fake: FakeOllama) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "FakeOllama/1.0"

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

        # --- plumbing ---------------------------------------------------------------------------------

        def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, obj: Any) -> None:
            self._send(status, json.dumps(obj, ensure_ascii=False).encode("utf-8"))

        def _stream(self, chunks: list[bytes], content_type: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.end_headers()  # HTTP/1.0: the body ends when the connection closes
            for chunk in chunks:
                self.wfile.write(chunk)
                self.wfile.flush()

        def _body(self) -> dict[str, Any] | None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                return None
            return body if isinstance(body, dict) else None

        # --- routes -----------------------------------------------------------------------------------

        def do_GET(self) -> None:
            with fake._lock:
                fake.requests.append({"method": "GET", "path": self.path, "body": None})
            models = fake.models or []
            if self.path == "/api/tags":
                self._json(200, {"models": [{"name": m, "model": m, "modified_at": "2024-01-01T00:00:00Z",
                                             "size": 1, "digest": "0" * 64, "details": {}} for m in models]})
            elif self.path == "/api/version":
                self._json(200, {"version": "0.0.0-fake"})
            elif self.path == "/v1/models":
                self._json(200, {"object": "list", "data": [{"id": m, "object": "model", "created": 0,
                                                             "owned_by": "fake"} for m in models]})
            else:
                self._json(404, {"error": f"no route {self.path}"})

        def do_POST(self) -> None:
            body = self._body()
            with fake._lock:
                fake.requests.append({"method": "POST", "path": self.path, "body": body})
            if body is None:
                self._json(400, {"error": "the request body is not a JSON object"})
            elif self.path == "/api/chat":
                self._chat(ChatRequest(self.path, body))
            elif self.path == "/v1/chat/completions":
                self._chat(ChatRequest(self.path, body))
            else:
                self._json(404, {"error": f"no route {self.path}"})

        def _chat(self, request: ChatRequest) -> None:
            ollama = request.api == "ollama"
            response_format = request.body.get("response_format") or {}
            if not ollama and fake.reject_json_schema and response_format.get("type") == "json_schema":
                fake._begin(request, may_fault=False)
                fake._end()
                self._json(400, {"error": {"message": "response_format json_schema is not supported",
                                           "type": "invalid_request_error"}})
                return
            fault = fake._begin(request, may_fault=True)
            if fake._slots is not None:
                fake._slots.acquire()
            try:
                fake._wait(fake.delay_s)
                if fault == "slow":
                    fake._wait(fake.slow_s)
                if fault == "die":
                    threading.Thread(target=fake.stop, daemon=True).start()
                    fake._stopping.set()
                if fault in ("drop", "die") or fake._stopping.is_set():  # a stopped server answers nothing
                    self.close_connection = True  # no status line at all: the client sees a dropped reply
                    return
                if fault == "http_500":
                    self._json(500, {"error": "fake internal server error"} if ollama else
                               {"error": {"message": "fake internal server error", "type": "server_error"}})
                    return
                if fault == "bad_body":
                    self._send(200, b"<html>upstream proxy says hello</html>", "text/html")
                    return
                if not fake._knows(request.model):
                    self._json(404, {"error": f"model '{request.model}' not found"} if ollama else
                               {"error": {"message": f"model {request.model} not found", "type": "not_found"}})
                    return
                content = fake._content(request, fault)
                if ollama:
                    self._ollama_reply(request, content)
                else:
                    self._openai_reply(request, content)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout) before the reply
            finally:
                if fake._slots is not None:
                    fake._slots.release()
                fake._end()

        def _ollama_reply(self, request: ChatRequest, content: str) -> None:
            base = {"model": request.model, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            final = {**base, "message": {"role": "assistant", "content": ""}, "done": True,
                     "done_reason": "stop", "total_duration": 1, "load_duration": 0,
                     "prompt_eval_count": request.prompt_chars // 3, "prompt_eval_duration": 1,
                     "eval_count": len(content) // 3, "eval_duration": 1}
            if not request.stream:
                self._json(200, {**final, "message": {"role": "assistant", "content": content}})
                return
            pieces = [content[i:i + 16] for i in range(0, len(content), 16)]
            lines = [{**base, "message": {"role": "assistant", "content": p}, "done": False} for p in pieces]
            self._stream([json.dumps(x).encode() + b"\n" for x in lines + [final]], "application/x-ndjson")

        def _openai_reply(self, request: ChatRequest, content: str) -> None:
            base = {"id": "chatcmpl-fake", "created": int(time.time()), "model": request.model}
            if not request.stream:
                self._json(200, {**base, "object": "chat.completion",
                                 "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": content}}],
                                 "usage": {"prompt_tokens": request.prompt_chars // 3,
                                           "completion_tokens": len(content) // 3,
                                           "total_tokens": (request.prompt_chars + len(content)) // 3}})
                return
            chunks = [{**base, "object": "chat.completion.chunk",
                       "choices": [{"index": 0, "delta": {"role": "assistant", "content": content[i:i + 16]},
                                    "finish_reason": None}]} for i in range(0, len(content), 16)]
            chunks.append({**base, "object": "chat.completion.chunk",
                           "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            events = [f"data: {json.dumps(c)}\n\n".encode() for c in chunks] + [b"data: [DONE]\n\n"]
            self._stream(events, "text/event-stream")

    return Handler


def serve_main(argv: list[str] | None = None) -> int:
    """Serve one fake server in this process until stdin closes; prints its URL first (benchmarks start servers
    in their own processes so that the servers' threads do not compete with the client for one interpreter)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="A fake Ollama/OpenAI server on 127.0.0.1 (tests, benchmarks).")
    parser.add_argument("--delay-s", type=float, default=0.1, help="seconds before every chat reply")
    parser.add_argument("--parallel", type=int, default=None, help="replies worked on at once (default: no cap)")
    args = parser.parse_args(argv)
    with FakeOllama(delay_s=args.delay_s, parallel=args.parallel) as url:
        print(url, flush=True)
        sys.stdin.read()
    return 0


if __name__ == "__main__":
    raise SystemExit(serve_main())
