"""A real OpenAI-compatible HTTP server on loopback, for tests: Chat Completions only.

It listens on 127.0.0.1 on a random free port, answers `POST /v1/chat/completions` with
whatever a *responder* function returns, records every request, and injects faults on
demand. Nothing leaves the machine.

Usage: the `fake_openai` pytest fixture below starts it before a test and stops it after
(import it into a test module: ``from pinlanding_tests.fake_openai_server import Fault,
fake_openai  # noqa: F401``)::

    def test_something(fake_openai):
        fake_openai.responder = lambda body: {"attributes": [{"key": "color", "value": "red"}]}
        fake_openai.inject(Fault.rate_limit(retry_after_s=1), match="Red Shirt")
        settings = LLMSettings(model="fake-vlm", base_url=fake_openai.base_url, api_key="test")
        ...
        assert fake_openai.request_count() == 3
        body = fake_openai.requests[0].body  # the parsed JSON request

Or without pytest: ``with FakeOpenAIServer() as server: ...``.

* `responder(body) -> dict | str`: the assistant message content for one request (a dict is
  serialized to JSON). The default echoes `{"echo": <last user text>}`.
* `inject(*faults, match=None)`: queue faults; each applies to one later request whose
  raw body contains `match` (any request if None), in order. Faults:
  `Fault.rate_limit(retry_after_s, header=None)` (429 + Retry-After, or that header verbatim), `Fault.server_error(status)` (500),
  `Fault.hang(seconds)` (sleeps before answering: longer than the client timeout),
  `Fault.malformed()` (content that is not JSON), `Fault.truncated()` (half the content
  with finish_reason "length"), `Fault.invalid_schema()` (JSON that ignores the schema).
* `fault_policy(body, seen) -> Fault | None`: faults decided by the request itself (`seen`:
  how many earlier requests had the same messages), e.g. `PlausibleModel.faults`, which
  fails some first attempts so that retries and repairs succeed.
* `requests`: list of `RecordedRequest(path, body, raw, headers, received_at, fault)`.
* Usage tokens are reported (about 4 characters per token) so cost counters can be tested.

`PlausibleModel` answers every request the pipeline makes (VLM attributes read from the
product text it is sent, some of them wrong; vocabulary verdicts; collection validation,
titles and scores) like a real, imperfect model would.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass(frozen=True)
class Fault:
    kind: str  # rate_limit | server_error | hang | malformed | truncated | invalid_schema
    seconds: float = 0.0
    status: int = 500
    retry_after: str | None = None  # the Retry-After header as sent, when not `seconds`

    @staticmethod
    def rate_limit(retry_after_s: float = 1.0, header: str | None = None) -> "Fault":
        """429 with `Retry-After: <retry_after_s>`, or with `header` verbatim (any text)."""
        return Fault("rate_limit", seconds=retry_after_s, status=429, retry_after=header)

    @staticmethod
    def server_error(status: int = 500) -> "Fault":
        return Fault("server_error", status=status)

    @staticmethod
    def hang(seconds: float) -> "Fault":
        return Fault("hang", seconds=seconds)

    @staticmethod
    def malformed() -> "Fault":
        return Fault("malformed")

    @staticmethod
    def truncated() -> "Fault":
        return Fault("truncated")

    @staticmethod
    def invalid_schema() -> "Fault":
        return Fault("invalid_schema")


@dataclass
class RecordedRequest:
    path: str
    body: dict
    raw: str
    headers: dict[str, str]  # names lowercased
    received_at: float
    fault: str | None = None


@dataclass
class _Injection:
    fault: Fault
    match: str | None


def user_texts(body: dict) -> list[str]:
    """The text of every user message, in order (a repair request adds one at the end)."""
    texts = []
    for message in body.get("messages", []):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        else:
            texts.append("\n".join(part.get("text", "") for part in content or [] if part.get("type") == "text"))
    return texts


def first_user_text(body: dict) -> str:
    texts = user_texts(body)
    return texts[0] if texts else ""


def last_user_text(body: dict) -> str:
    texts = user_texts(body)
    return texts[-1] if texts else ""


def image_urls(body: dict) -> list[str]:
    urls = []
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, list):
            urls.extend(part["image_url"]["url"] for part in content if part.get("type") == "image_url")
    return urls


@dataclass
class FakeOpenAIServer:
    responder: Callable[[dict], dict | str] = field(default=lambda body: {"echo": last_user_text(body)})
    requests: list[RecordedRequest] = field(default_factory=list)
    fault_policy: Callable[[dict, int], Fault | None] | None = None

    def __post_init__(self) -> None:
        self._seen: Counter[str] = Counter()
        self._injections: list[_Injection] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> "FakeOpenAIServer":
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes hanging handlers
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "FakeOpenAIServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    # -- scripting ------------------------------------------------------------------------

    def inject(self, *faults: Fault, match: str | None = None) -> None:
        with self._lock:
            self._injections.extend(_Injection(f, match) for f in faults)

    def pending_faults(self) -> int:
        with self._lock:
            return len(self._injections)

    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._injections.clear()

    def _take_fault(self, raw: str, body: dict) -> Fault | None:
        with self._lock:
            for i, injection in enumerate(self._injections):
                if injection.match is None or injection.match in raw:
                    return self._injections.pop(i).fault
            if self.fault_policy is None:
                return None
            messages = json.dumps(body.get("messages"), sort_keys=True)
            seen = self._seen[messages]
            self._seen[messages] += 1
        return self.fault_policy(body, seen)

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    # -- answering ------------------------------------------------------------------------

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length).decode("utf-8", "replace")
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            return _send(handler, 400, {"error": {"message": "request body is not JSON", "type": "invalid_request_error"}})
        fault = self._take_fault(raw, body)
        self._record(RecordedRequest(handler.path, body, raw, {k.lower(): v for k, v in handler.headers.items()}, time.monotonic(), fault.kind if fault else None))
        if not handler.path.rstrip("/").endswith("/chat/completions"):
            return _send(handler, 404, {"error": {"message": f"unknown path {handler.path}", "type": "not_found"}})
        if fault and fault.kind == "rate_limit":
            return _send(handler, 429, {"error": {"message": "rate limited", "type": "rate_limit_error"}}, {"Retry-After": fault.retry_after if fault.retry_after is not None else f"{fault.seconds:g}"})
        if fault and fault.kind == "server_error":
            return _send(handler, fault.status, {"error": {"message": "injected server error", "type": "server_error"}})
        if fault and fault.kind == "hang":
            if self._stopping.wait(fault.seconds):
                return
        try:
            answer = self.responder(body)
        except Exception as exc:  # a broken responder is a test bug: make it loud, as a 400
            return _send(handler, 400, {"error": {"message": f"responder failed: {exc!r}", "type": "invalid_request_error"}})
        content = answer if isinstance(answer, str) else json.dumps(answer)
        finish_reason = "stop"
        if fault and fault.kind == "malformed":
            content = "Sure! Here are the attributes: {key: color, value: red"
        elif fault and fault.kind == "truncated":
            content, finish_reason = content[: max(1, len(content) // 2)], "length"
        elif fault and fault.kind == "invalid_schema":
            content = json.dumps({"unexpected": True})
        completion = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": len(raw) // 4, "completion_tokens": max(1, len(content) // 4), "total_tokens": len(raw) // 4 + max(1, len(content) // 4)},
        }
        _send(handler, 200, completion)


def _send(handler: BaseHTTPRequestHandler, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
    data = json.dumps(payload).encode()
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout): fine
        pass


def _handler_for(server: FakeOpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            server._answer(self)

        def log_message(self, format: str, *args) -> None:  # keep test output quiet
            pass

    return Handler


# -- a plausible model ---------------------------------------------------------------------

_COLORS = ("navy blue", "off white", "black", "white", "blue", "red", "green", "grey", "pink", "yellow", "brown", "purple", "orange", "beige", "maroon", "silver", "gold", "olive")
_GENDERS = {"men": "male", "women": "female", "boys": "boys", "girls": "girls", "unisex": "unisex"}


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "big")


def framed(text: str, tag: str) -> str:
    """What the pipeline framed as data between <tag> and </tag> (the whole text if unframed)."""
    match = re.search(rf"<{tag}>\n(.*)\n</{tag}>", text, re.DOTALL)
    return match.group(1) if match else text


def product_fields(body: dict) -> dict[str, str]:
    """The "Name: value" lines of the product text the pipeline sent."""
    return dict(line.split(": ", 1) for line in first_user_text(body).splitlines() if ": " in line)


class PlausibleModel:
    """A deterministic stand-in for a real VLM/LLM, for the pipeline's request kinds.

    Attributes come from the product text it receives (it never sees labels unless the
    pipeline sends them): the product type is the title's last word, the colour the first
    colour word, the gender as a synonym ("male"), a marketing value now and then. About one
    answer in ten is wrong (another colour, a vaguer type), decided by a hash of the title.
    `faults` fails about one first attempt in six (429, 500 or non-JSON), so the pipeline's
    retries and repairs are exercised and still end with an answer for every request."""

    def __init__(self, wrong_every: int = 10, fault_every: int = 6):
        self.wrong_every = wrong_every
        self.fault_every = fault_every

    def __call__(self, body: dict) -> dict:
        stage = body["response_format"]["json_schema"]["name"]
        return getattr(self, stage)(body)

    def product_attributes(self, body: dict) -> dict:
        fields = product_fields(body)
        title = fields.get("Title", "")
        words = re.findall(r"[a-z]+", title.lower())
        lowered = " " + " ".join(words) + " "
        color = next((c for c in _COLORS if f" {c} " in lowered), None)
        gender = next((g for g in _GENDERS if f" {g} " in lowered), None)
        product_type = next((w for w in reversed(words) if len(w) > 2 and w not in _GENDERS and w not in " ".join(_COLORS)), None)
        digest = _digest(title)
        attributes = []
        if product_type:
            attributes.append({"key": "product_type", "value": "accessory" if digest % self.wrong_every == 1 else product_type})
        if color:
            wrong = _COLORS[(_COLORS.index(color) + 3) % len(_COLORS)]
            attributes.append({"key": "Color", "value": wrong if digest % self.wrong_every == 0 else color})
        if gender:
            attributes.append({"key": "gender", "value": _GENDERS[gender]})
        if digest % 7 == 0:
            attributes.append({"key": "style", "value": "best seller"})  # marketing: the judge must drop it
        return {"attributes": attributes}

    def attribute_verdicts(self, body: dict) -> dict:
        items = json.loads(framed(first_user_text(body), "values"))
        marketing = {"best seller", "trending", "new"}
        return {"verdicts": [
            {**item, "searchable": item["value"] not in marketing, "visually_grounded": item["value"] not in marketing, "safe": True, "reason": "marketing" if item["value"] in marketing else "ok"}
            for item in items
        ]}

    def collection_validation(self, body: dict) -> dict:
        return {"valid": True, "reason": "a plausible page"}

    def collection_title(self, body: dict) -> dict:
        attributes = dict(line.removeprefix("- ").split(": ", 1) for line in first_user_text(body).splitlines() if line.startswith("- "))
        noun = attributes.get("product type", "item")
        noun = noun if noun.endswith("s") else noun + "s"
        words = [attributes[k] for k in ("color", "pattern", "occasion") if k in attributes] + [noun]
        gender = attributes.get("gender")
        title = " ".join(w.title() for w in words) + (f" for {gender.title()}" if gender in ("men", "women", "boys", "girls") else "")
        return {"title": title}

    def collection_title_score(self, body: dict) -> dict:
        return {"score": 4 + _digest(first_user_text(body)) % 2, "reason": "clear and searchable"}

    def concept_decomposition(self, body: dict) -> dict:
        """Combinations from the concept's hints that name vocabulary values (each hint a
        product type or an occasion, with the first hinted occasion beside a product type),
        plus one with a value the vocabulary lacks ("material: cashmere"), as a real model
        sometimes invents: the pipeline's validation must reject it."""
        text = first_user_text(body)
        vocabulary = {
            key: [v.strip() for v in values.split(",")]
            for key, values in (line.removeprefix("- ").split(": ", 1) for line in framed(text, "vocabulary").splitlines() if line.startswith("- "))
        }
        concept = framed(text, "concept")
        hints_line = next((line for line in concept.splitlines() if line.startswith("Hints: ")), "Hints: ")
        hints = [h.strip() for h in hints_line.removeprefix("Hints: ").split(",") if h.strip()]
        occasion = next((h for h in hints if h in vocabulary.get("occasion", [])), None)
        combinations = []
        for hint in hints:
            if hint in vocabulary.get("product_type", []):
                attributes = [{"key": "product_type", "value": hint}] + ([{"key": "occasion", "value": occasion}] if occasion else [])
                combinations.append({"attributes": attributes, "rationale": f"{hint} fits the concept"})
        first_type = next((h for h in hints if h in vocabulary.get("product_type", [])), "shirt")
        combinations.append({"attributes": [{"key": "product_type", "value": first_type}, {"key": "material", "value": "cashmere"}], "rationale": "luxurious"})
        return {"combinations": combinations}

    def concept_proposals(self, body: dict) -> dict:
        return {"concepts": [{"name": "weekend sport", "hints": ["sports", "t-shirt"]}, {"name": "<b>Click here</b>", "hints": []}]}

    def faults(self, body: dict, seen: int) -> Fault | None:
        """A fault on about one first attempt in `fault_every`; retries and repairs succeed."""
        if seen:
            return None
        digest = _digest(json.dumps(body.get("messages"), sort_keys=True))
        if digest % self.fault_every:
            return None
        return (Fault.rate_limit(0.05), Fault.server_error(500), Fault.malformed())[(digest // self.fault_every) % 3]


@pytest.fixture
def fake_openai():
    """A started `FakeOpenAIServer`, stopped after the test."""
    server = FakeOpenAIServer().start()
    try:
        yield server
    finally:
        server.stop()
