"""The `llm` resource: which extractor runs, and the OpenAI-compatible endpoint it calls.

Configuration (resource config fields; defaults from the environment when the code
location loads):

* `extractor`: `openai` | `offline` | `auto` (default, `PINLANDING_EXTRACTOR`): `auto`
  means `openai` when an API key is present, else `offline`.
* the endpoint: the `openai` client's own `OPENAI_API_KEY` / `OPENAI_BASE_URL` (read at
  run time, so the key never lands in run config or the UI; `api_key_env` names another
  variable); the model: `PINLANDING_VLM_MODEL` (default `gpt-4o-mini`).
* cost and safety: timeout, retries, backoff, concurrency, prices per 1k tokens for the
  estimate in asset metadata, and the budgets of each asset materialization that calls the
  endpoint (`max_calls`, `max_cost_usd`: reached, they stop new calls; what was answered
  is kept and cached, the rest is asked by the next run).
"""


import os
from collections.abc import Callable

from dagster import ConfigurableResource

from ..core.llm_client import DEFAULT_MAX_CALLS, DEFAULT_MAX_COST_USD, CachedLLMClient, LLMProgress, LLMSettings
from ..core.warehouse import Warehouse

DEFAULT_VLM_MODEL = "gpt-4o-mini"
EXTRACTORS = ("auto", "openai", "offline")


class LLMResource(ConfigurableResource):
    """The VLM/LLM endpoint and the extractor choice."""

    extractor: str = "auto"
    model: str = DEFAULT_VLM_MODEL
    base_url: str | None = None  # None: OPENAI_BASE_URL, else api.openai.com
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 60.0
    max_retries: int = 5
    max_concurrency: int = 4
    backoff_base_s: float = 1.0
    max_backoff_s: float = 60.0
    max_output_tokens: int = 1024
    price_per_1k_input: float = 0.00015  # gpt-4o-mini list price, USD; set for your model
    price_per_1k_output: float = 0.0006
    retry_cached_failures: bool = False
    max_calls: int | None = DEFAULT_MAX_CALLS  # per materialization, retries and repairs included; None: no bound
    max_cost_usd: float | None = DEFAULT_MAX_COST_USD  # per materialization, estimated from the prices above
    progress_every: int = 25  # answers between two progress lines in the run log

    @classmethod
    def from_env(cls) -> "LLMResource":
        return cls(
            extractor=os.environ.get("PINLANDING_EXTRACTOR", "auto"),
            model=os.environ.get("PINLANDING_VLM_MODEL") or DEFAULT_VLM_MODEL,
        )

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) or None

    def resolved_extractor(self) -> str:
        """`openai` or `offline`; a clear error for `openai` without a key."""
        if self.extractor not in EXTRACTORS:
            raise ValueError(f"extractor must be one of {EXTRACTORS}, got {self.extractor!r}")
        if self.extractor == "auto":
            return "openai" if self.api_key() else "offline"
        if self.extractor == "openai" and not self.api_key():
            raise ValueError(f"extractor 'openai' needs an API key in ${self.api_key_env} (or choose extractor 'offline')")
        return self.extractor

    def settings(self) -> LLMSettings:
        return LLMSettings(
            model=self.model,
            base_url=self.base_url or os.environ.get("OPENAI_BASE_URL") or None,
            api_key=self.api_key(),
            timeout_s=self.timeout_s,
            max_retries=self.max_retries,
            max_concurrency=self.max_concurrency,
            backoff_base_s=self.backoff_base_s,
            max_backoff_s=self.max_backoff_s,
            max_output_tokens=self.max_output_tokens,
            price_per_1k_input=self.price_per_1k_input,
            price_per_1k_output=self.price_per_1k_output,
            retry_cached_failures=self.retry_cached_failures,
            max_calls=self.max_calls,
            max_cost_usd=self.max_cost_usd,
            progress_every=self.progress_every,
        )

    def client(self, warehouse: Warehouse, on_progress: Callable[[LLMProgress], None] | None = None) -> CachedLLMClient:
        return CachedLLMClient(self.settings(), warehouse, on_progress=on_progress)
