"""A cached, retrying, bounded-concurrency client for JSON-schema chat completions.

Every stage that asks a model for structured output (VLM attribute extraction, the
vocabulary judge, collection titles) goes through `CachedLLMClient.complete_json`:

* **Cache first.** Each `LLMRequest` carries a `cache_key` that the caller derives from
  everything that determines the answer (inputs, prompt version, model). Keys already in
  the DuckDB cache table are answered without a call; answers are written to the cache as
  they arrive, so an interrupted run resumes where it stopped and a re-run pays nothing.
* **Terminal failures are cached too** (output still invalid after the repair attempt): a
  re-run does not pay again for an answer that will not parse. `retry_cached_failures`
  asks for them again. Transient failures (429/5xx/timeouts after all retries) are not
  cached: the next run tries them again.
* **Retries** on 429, 5xx, timeouts and connection errors, with exponential backoff
  (plus jitter), honouring `Retry-After` / `retry-after-ms`, each wait capped.
* **One repair attempt** when the answer is not valid JSON, is truncated
  (`finish_reason == "length"`) or does not match the schema: the model sees its own
  answer and the error and is asked again. The schema sent and the validation of the reply
  both come from the request's answer model (`llm_responses`).
* **Bounded concurrency**: at most `max_concurrency` requests in flight.
* **Budgets**: `max_calls` HTTP requests and `max_cost_usd` estimated spend per client (one
  client per asset materialization). A budget reached stops new calls; the requests not
  answered end with `stop_reason` set ("call budget reached" / "cost budget reached"), are
  not cached (the next run asks them), and everything answered so far is cached. Cached
  answers never count against a budget.
* **Lazy requests**: a request's messages may be a function, called in the worker just
  before the call, so a large batch never holds every image in memory and a request the
  cache or a budget answers is never built.
* **Counters** and **progress**: calls, cache hits, retries, repairs, failures, tokens,
  estimated cost, all in `LLMStats` (`since` gives one batch's share); `on_progress`
  receives them every `progress_every` answers.

Every stage builds its request with `chat_request` (a system prompt, one user message, the
answer model) under a cache key of its own making.

It speaks the Chat Completions protocol through the `openai` package, so any
OpenAI-compatible server works (OpenAI, Azure, vLLM, Ollama, the tests' loopback server).
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import math
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

import polars as pl

from .llm_responses import InvalidOutput, StructuredAnswer
from .warehouse import Warehouse

# Budgets per client (one client per asset materialization): ~20k VLM calls or $10 of
# estimated spend, whichever comes first; `None` means no bound.
DEFAULT_MAX_CALLS = 20_000
DEFAULT_MAX_COST_USD = 10.0
DEFAULT_MODEL = "gpt-4o-mini"
CALL_BUDGET_REACHED = "call budget reached"
COST_BUDGET_REACHED = "cost budget reached"
REQUEST_NOT_BUILT = "request could not be built"

CACHE_SCHEMA = {
    "cache_key": pl.String,
    "model": pl.String,
    "schema_name": pl.String,
    "status": pl.String,  # "ok" | "failed" (terminal: invalid output after the repair)
    "response_json": pl.String,
    "error": pl.String,
    "prompt_tokens": pl.Int64,
    "completion_tokens": pl.Int64,
    "created_at": pl.Datetime("us", "UTC"),
}


@dataclass(frozen=True)
class LLMSettings:
    """Where the endpoint is and how hard to push it. `api_key=None` lets the `openai`
    client read OPENAI_API_KEY itself; `base_url=None` means OPENAI_BASE_URL or OpenAI."""

    model: str = DEFAULT_MODEL
    base_url: str | None = None  # None: OPENAI_BASE_URL, else api.openai.com
    api_key: str | None = None
    timeout_s: float = 60.0  # per request
    max_retries: int = 5  # on 429, 5xx, timeouts and connection errors
    max_concurrency: int = 4  # requests in flight
    backoff_base_s: float = 1.0  # the first retry's wait, doubled after each (plus jitter)
    max_backoff_s: float = 60.0  # each wait at most, Retry-After included
    temperature: float | None = 0.0  # None: the server's default
    max_output_tokens: int | None = 1024  # per answer; None: the server's limit
    # USD, for the cost estimate and max_cost_usd only: the default model's list prices,
    # set them for yours.
    price_per_1k_input: float = 0.00015
    price_per_1k_output: float = 0.0006
    retry_cached_failures: bool = False
    max_calls: int | None = DEFAULT_MAX_CALLS  # HTTP requests, retries and repairs included
    max_cost_usd: float | None = DEFAULT_MAX_COST_USD  # from the prices above; calls in flight may pass it
    progress_every: int = 25  # answers between two `on_progress` reports


@dataclass(frozen=True)
class LLMRequest:
    """One structured-output request: `answer` gives the schema sent and validates the reply.
    `messages` may be a function that builds them: it is called only when the request is
    actually sent (not for cached answers, not once a budget is reached), in a worker thread;
    if it raises, the request ends with `stop_reason` REQUEST_NOT_BUILT and the error."""

    cache_key: str
    messages: list[dict] | Callable[[], list[dict]]
    answer: type[StructuredAnswer]

    def built_messages(self) -> list[dict]:
        return list(self.messages() if callable(self.messages) else self.messages)


UserContent = str | list[dict]


def chat_request(
    answer: type[StructuredAnswer], cache_key: str, system: str, user: UserContent | Callable[[], UserContent]
) -> LLMRequest:
    """The request of every stage: its system prompt, then one user message (text, or parts
    such as text and an image). `user` may be a function: it is called when the request is
    sent, so costly content (an encoded image) is built only for a call."""
    if callable(user):
        return LLMRequest(cache_key, lambda: _chat(system, user()), answer)
    return LLMRequest(cache_key, _chat(system, user), answer)


def _chat(system: str, user: UserContent) -> list[dict]:
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


@dataclass(frozen=True)
class LLMResponse:
    cache_key: str
    data: StructuredAnswer | None  # an instance of the request's answer model
    error: str | None
    cached: bool
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # Why the client stopped before an answer: CALL_BUDGET_REACHED, COST_BUDGET_REACHED or
    # REQUEST_NOT_BUILT; None for answers and for failures of the call itself.
    stop_reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.data is not None


@dataclass
class LLMStats:
    """Counters of one client (cumulative over its `complete_json` calls)."""

    requests: int = 0
    cache_hits: int = 0
    calls_made: int = 0  # HTTP requests sent, including retries and repairs
    retries: int = 0
    repairs: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated_cost_usd: float = 0.0
    budget_stopped: int = 0  # requests left unanswered because a budget was reached
    budget_reached: str = ""  # which budget stopped the client, and its limit; "" when none did

    def as_metadata(self, prefix: str = "") -> dict[str, int | float | str]:
        return {f"{prefix}{k}": (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    def snapshot(self) -> "LLMStats":
        return LLMStats(**asdict(self))

    def since(self, before: "LLMStats") -> "LLMStats":
        """What was counted after `before` (a `snapshot`): one batch of a shared client.
        `budget_reached` is kept only when this batch had requests stopped by it."""
        counted = {name: value - getattr(before, name) for name, value in asdict(self).items() if name != "budget_reached"}
        return LLMStats(**counted, budget_reached=self.budget_reached if counted["budget_stopped"] else "")


@dataclass(frozen=True)
class LLMProgress:
    """Where a `complete_json` batch stands, with the client's counters so far."""

    answered: int  # requests of this batch with an outcome (answer, failure or stop)
    total: int
    stats: LLMStats

    def describe(self) -> str:
        s = self.stats
        text = (
            f"LLM {self.answered}/{self.total} requests done: {s.calls_made} calls, {s.cache_hits} cache hits, "
            f"{s.failures} errors, ~${s.estimated_cost_usd:.4f} estimated"
        )
        if s.budget_reached:
            text += f"; {s.budget_reached}, {s.budget_stopped} requests not sent"
        return text


def stable_key(*parts: object) -> str:
    """A cache key from the parts that determine an answer (order matters)."""
    text = "\x1f".join(json.dumps(p, sort_keys=True, default=str) if not isinstance(p, str) else p for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()


class TransientError(RuntimeError):
    """Worth retrying: rate limits, server errors, timeouts, dropped connections."""

    def __init__(self, message: str, retry_after_s: float | None = None):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class BudgetReached(RuntimeError):
    """No new call may be made: `reason` is CALL_BUDGET_REACHED or COST_BUDGET_REACHED."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason} ({detail})")
        self.reason = reason


def frame_as_data(tag: str, text: str) -> str:
    """`text` between <tag> and </tag>, as every prompt frames catalog text (the system
    prompts say what is inside is data, never instructions). Any copy of the tag inside the
    text is removed first, so the text cannot close the frame and speak as the prompt."""
    inner = re.sub(rf"<\s*/?\s*{re.escape(tag)}\s*>", "", text, flags=re.IGNORECASE)
    return f"<{tag}>\n{inner}\n</{tag}>"


@dataclass
class _Attempt:
    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int


@dataclass
class _Outcome:
    response: LLMResponse
    terminal: bool  # worth caching (success, or invalid even after the repair)


class CachedLLMClient:
    def __init__(
        self,
        settings: LLMSettings,
        warehouse: Warehouse,
        cache_table: str = "llm_cache",
        sleep: Callable[[float], None] = time.sleep,
        on_progress: Callable[[LLMProgress], None] | None = None,
    ):
        self.settings = settings
        self.warehouse = warehouse
        self.cache_table = cache_table
        self.stats = LLMStats()
        self._sleep = sleep
        self._on_progress = on_progress
        self._lock = threading.Lock()
        self._client = None

    # -- public ---------------------------------------------------------------------------

    def complete_json(self, requests: Sequence[LLMRequest], on_response: Callable[[LLMResponse], None] | None = None) -> list[LLMResponse]:
        """Answers in the order of `requests`; each either `data` (a dict) or `error`
        (with `stop_reason` when no call answered it: a budget, or a request not built)."""
        unique: dict[str, LLMRequest] = {}
        for request in requests:
            unique.setdefault(request.cache_key, request)
        self.stats.requests += len(requests)
        answers = self._cached(unique)
        self.stats.cache_hits += sum(1 for r in requests if r.cache_key in answers)
        pending = [r for key, r in unique.items() if key not in answers]
        progress = _ProgressReporter(self, len(unique))
        for response in answers.values():
            if on_response:
                on_response(response)
            progress.one_more()
        if pending:
            answers.update(self._call_all(pending, on_response, progress))
        progress.finish()
        return [answers[r.cache_key] for r in requests]

    def _budget_problem(self) -> BudgetReached | None:
        """The budget that forbids a new call now, if any (the caller holds `_lock`)."""
        settings = self.settings
        if settings.max_calls is not None and self.stats.calls_made >= settings.max_calls:
            return BudgetReached(CALL_BUDGET_REACHED, f"max_calls={settings.max_calls}")
        if settings.max_cost_usd is not None and self.stats.estimated_cost_usd >= settings.max_cost_usd:
            detail = f"max_cost_usd={settings.max_cost_usd:g}, estimated ${self.stats.estimated_cost_usd:.4f}"
            return BudgetReached(COST_BUDGET_REACHED, detail)
        return None

    # -- cache ----------------------------------------------------------------------------

    def _cached(self, requests: dict[str, LLMRequest]) -> dict[str, LLMResponse]:
        """The cached answers of `requests` (by cache key). A stored answer its model no
        longer accepts (the model changed without a new prompt version) is not an answer:
        it is asked again, and the new answer replaces it."""
        if not requests or not self.warehouse.has_table(self.cache_table):
            return {}
        statuses = ["ok"] if self.settings.retry_cached_failures else ["ok", "failed"]
        rows = self.warehouse.read(
            f'SELECT * FROM "{self.cache_table}" WHERE cache_key IN (SELECT UNNEST(?::VARCHAR[])) '
            "AND model = ? AND status IN (SELECT UNNEST(?::VARCHAR[]))",
            [list(requests), self.settings.model, statuses],
        )
        out = {}
        for row in rows.iter_rows(named=True):
            data = None
            if row["status"] == "ok":
                try:
                    data = requests[row["cache_key"]].answer.from_reply(row["response_json"])
                except InvalidOutput:
                    continue
            out[row["cache_key"]] = LLMResponse(row["cache_key"], data, row["error"], True, row["prompt_tokens"], row["completion_tokens"])
        return out

    def _store(self, request: LLMRequest, response: LLMResponse) -> None:
        row = {
            "cache_key": response.cache_key,
            "model": self.settings.model,
            "schema_name": request.answer.schema_name,
            "status": "ok" if response.ok else "failed",
            "response_json": json.dumps(response.data.model_dump()) if response.data is not None else None,
            "error": response.error,
            "prompt_tokens": response.prompt_tokens,
            "completion_tokens": response.completion_tokens,
            "created_at": datetime.now(timezone.utc),
        }
        self.warehouse.upsert(self.cache_table, pl.DataFrame([row], schema=CACHE_SCHEMA), ["cache_key"])

    # -- calls ----------------------------------------------------------------------------

    def _call_all(
        self, pending: list[LLMRequest], on_response: Callable[[LLMResponse], None] | None, progress: "_ProgressReporter"
    ) -> dict[str, LLMResponse]:
        answers: dict[str, LLMResponse] = {}
        workers = max(1, min(self.settings.max_concurrency, len(pending)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llm") as pool:
            futures: dict[Future, LLMRequest] = {pool.submit(self._complete_one, r): r for r in pending}
            remaining = set(futures)
            try:
                while remaining:
                    done, remaining = wait(remaining, return_when=FIRST_COMPLETED)
                    for future in done:
                        request = futures[future]
                        outcome = future.result()
                        # Stored from this (the caller's) thread as each answer arrives.
                        if outcome.terminal:
                            self._store(request, outcome.response)
                        answers[request.cache_key] = outcome.response
                        if on_response:
                            on_response(outcome.response)
                        progress.one_more()
            except BaseException:
                for future in remaining:
                    future.cancel()
                raise
        return answers

    def _complete_one(self, request: LLMRequest) -> _Outcome:
        tokens = [0, 0]
        with self._lock:
            budget = self._budget_problem()
        if budget is not None:  # checked before building: a stopped request costs no work
            return self._stopped(request, budget, tokens)
        try:
            messages = request.built_messages()
        except Exception as exc:
            with self._lock:
                self.stats.failures += 1
            error = f"{REQUEST_NOT_BUILT}: {type(exc).__name__}: {exc}"[:500]
            return _Outcome(LLMResponse(request.cache_key, None, error, False, stop_reason=REQUEST_NOT_BUILT), terminal=False)
        try:
            attempt = self._call_with_retries(messages, request, tokens)
            try:
                data = request.answer.from_reply(attempt.text, attempt.finish_reason)
            except InvalidOutput as first_error:
                with self._lock:
                    self.stats.repairs += 1
                messages = messages + [
                    {"role": "assistant", "content": attempt.text},
                    {"role": "user", "content": repair_instruction(str(first_error))},
                ]
                attempt = self._call_with_retries(messages, request, tokens)
                data = request.answer.from_reply(attempt.text, attempt.finish_reason)
        except BudgetReached as exc:  # e.g. before a retry or the repair: not an answer, not cached
            return self._stopped(request, exc, tokens)
        except InvalidOutput as exc:
            with self._lock:
                self.stats.failures += 1
            error = f"invalid output after one repair attempt: {exc}"
            return _Outcome(LLMResponse(request.cache_key, None, error, False, *tokens), terminal=True)
        except TransientError as exc:
            with self._lock:
                self.stats.failures += 1
            error = f"gave up after {self.settings.max_retries} retries: {exc}"
            return _Outcome(LLMResponse(request.cache_key, None, error, False, *tokens), terminal=False)
        except Exception as exc:  # e.g. 400/401: a clear error for this request, not a crash
            with self._lock:
                self.stats.failures += 1
            error = f"{type(exc).__name__}: {exc}"[:500]
            return _Outcome(LLMResponse(request.cache_key, None, error, False, *tokens), terminal=False)
        return _Outcome(LLMResponse(request.cache_key, data, None, False, *tokens), terminal=True)

    def _stopped(self, request: LLMRequest, budget: BudgetReached, tokens: list[int]) -> _Outcome:
        with self._lock:
            self.stats.budget_stopped += 1
            self.stats.budget_reached = self.stats.budget_reached or str(budget)
        error = f"{budget}: not answered, not cached; the next run asks again"
        return _Outcome(LLMResponse(request.cache_key, None, error, False, *tokens, stop_reason=budget.reason), terminal=False)

    def _call_with_retries(self, messages: list[dict], request: LLMRequest, tokens: list[int]) -> _Attempt:
        retries = 0
        while True:
            try:
                attempt = self._call_once(messages, request)
            except TransientError as exc:
                if retries >= self.settings.max_retries:
                    raise
                retries += 1
                with self._lock:
                    self.stats.retries += 1
                self._sleep(self._backoff(retries, exc.retry_after_s))
                continue
            tokens[0] += attempt.prompt_tokens
            tokens[1] += attempt.completion_tokens
            return attempt

    def _backoff(self, retry: int, retry_after_s: float | None) -> float:
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), self.settings.max_backoff_s)
        delay = self.settings.backoff_base_s * (2 ** (retry - 1))
        return min(delay * (1 + 0.25 * random.random()), self.settings.max_backoff_s)

    def _openai(self):
        if self._client is None:
            import openai

            # Retries are ours (counted, with Retry-After and our caps), not the client's.
            self._client = openai.OpenAI(
                api_key=self.settings.api_key, base_url=self.settings.base_url, timeout=self.settings.timeout_s, max_retries=0
            )
        return self._client

    def _call_once(self, messages: list[dict], request: LLMRequest) -> _Attempt:
        import openai

        client = self._openai()
        kwargs: dict = {
            "model": self.settings.model,
            "messages": messages,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": request.answer.schema_name, "schema": request.answer.wire_schema(), "strict": True},
            },
        }
        if self.settings.temperature is not None:
            kwargs["temperature"] = self.settings.temperature
        if self.settings.max_output_tokens is not None:
            kwargs["max_tokens"] = self.settings.max_output_tokens
        with self._lock:  # the check and the count together: the call budget is exact
            budget = self._budget_problem()
            if budget is not None:
                raise budget
            self.stats.calls_made += 1
        try:
            completion = client.chat.completions.create(**kwargs)
        except openai.APITimeoutError as exc:
            raise TransientError(f"timeout after {self.settings.timeout_s}s") from exc
        except openai.APIConnectionError as exc:
            raise TransientError(f"connection error: {exc}") from exc
        except openai.APIStatusError as exc:
            if exc.status_code == 429 or exc.status_code >= 500 or exc.status_code == 408:
                raise TransientError(f"HTTP {exc.status_code}", retry_after(exc.response.headers)) from exc
            raise
        except openai.APIResponseValidationError as exc:
            raise TransientError(f"unreadable response body: {exc}") from exc
        usage = completion.usage
        prompt_tokens = usage.prompt_tokens if usage else 0
        completion_tokens = usage.completion_tokens if usage else 0
        with self._lock:
            self.stats.prompt_tokens += prompt_tokens
            self.stats.completion_tokens += completion_tokens
            self.stats.estimated_cost_usd += (
                prompt_tokens * self.settings.price_per_1k_input + completion_tokens * self.settings.price_per_1k_output
            ) / 1000
        if not completion.choices:
            raise TransientError("response without choices")
        choice = completion.choices[0]
        return _Attempt(choice.message.content or "", choice.finish_reason, prompt_tokens, completion_tokens)


class _ProgressReporter:
    """Calls the client's `on_progress` every `progress_every` outcomes of one batch and once
    at its end (from the caller's thread, like `on_response`)."""

    def __init__(self, client: CachedLLMClient, total: int):
        self.client = client
        self.total = total
        self.answered = 0
        self.reported_at = 0

    def one_more(self) -> None:
        self.answered += 1
        if self.answered - self.reported_at >= max(1, self.client.settings.progress_every):
            self._report()

    def finish(self) -> None:
        if self.total and self.reported_at != self.answered:
            self._report()

    def _report(self) -> None:
        self.reported_at = self.answered
        if self.client._on_progress is not None:
            with self.client._lock:
                snapshot = self.client.stats.snapshot()
            self.client._on_progress(LLMProgress(self.answered, self.total, snapshot))


# -- answers -------------------------------------------------------------------------------


def _seconds(value: float) -> float | None:
    """A usable wait: finite and not negative (NaN and infinity are not waits)."""
    return max(value, 0.0) if math.isfinite(value) else None


def retry_after(headers) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` (seconds or an HTTP date).
    None when absent or unreadable (garbage, NaN, a malformed date): the caller then backs
    off exponentially instead of failing the request."""
    if headers is None:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            waited = _seconds(float(millis) / 1000)
            if waited is not None:
                return waited
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return _seconds(float(value))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:  # "-0000": a date in UTC without a stated zone
        parsed = parsed.replace(tzinfo=timezone.utc)
    return max((parsed - datetime.now(timezone.utc)).total_seconds(), 0.0)


def repair_instruction(error: str) -> str:
    return (
        f"Your previous answer could not be used: {error}. "
        "Reply again with only one complete JSON object that matches the requested schema, and nothing else."
    )
