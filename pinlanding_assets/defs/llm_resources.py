"""The `llm` resource: which extractor runs, and the OpenAI-compatible endpoint it calls.

Configuration (resource config fields; defaults from the environment when the code
location loads):

* `extractor`: `openai` | `offline` | `auto` (default, `PINLANDING_EXTRACTOR`): `auto`
  means `openai` when an API key is present, else `offline`.
* the endpoint: the `openai` client's own `OPENAI_API_KEY` / `OPENAI_BASE_URL` (read at
  run time, so the key never lands in run config or the UI; `api_key_env` names another
  variable); the model: `PINLANDING_VLM_MODEL` (default `gpt-4o-mini`).
* the rest are `LLMSettings`'s fields (core/llm_client.py, with their defaults and docs):
  timeout, retries, backoff, concurrency, temperature, prices per 1k tokens for the
  estimate in asset metadata, and the budgets of each asset materialization that calls the
  endpoint (`max_calls`, `max_cost_usd`: reached, they stop new calls; what was answered
  is kept and cached, the rest is asked by the next run).
"""


import os
from collections.abc import Callable
from dataclasses import replace

from dagster import ConfigurableResource

from ..core.llm_client import CachedLLMClient, LLMProgress, LLMSettings
from ..core.warehouse import Warehouse
from .config_from_core import CoreSettings, with_core_settings

EXTRACTORS = ("auto", "openai", "offline")
# The endpoint settings are `LLMSettings`'s fields, defined in the core with their defaults;
# the key stays out of run config.
LLM_SETTINGS = CoreSettings(LLMSettings, set_by_dagster={"api_key": "read at run time from the variable api_key_env names"})


class LLMResource(with_core_settings(ConfigurableResource, LLM_SETTINGS)):
    """The VLM/LLM endpoint and the extractor choice."""

    extractor: str = "auto"  # auto | openai | offline
    api_key_env: str = "OPENAI_API_KEY"

    @classmethod
    def from_env(cls) -> "LLMResource":
        return cls(
            extractor=os.environ.get("PINLANDING_EXTRACTOR", "auto"),
            model=os.environ.get("PINLANDING_VLM_MODEL") or LLMSettings.model,
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
        return self.to_core(LLMSettings, api_key=self.api_key(), base_url=self.base_url or os.environ.get("OPENAI_BASE_URL") or None)

    def client(self, warehouse: Warehouse, on_progress: Callable[[LLMProgress], None] | None = None, model: str | None = None) -> CachedLLMClient:
        """A client of the endpoint, cached in the warehouse; `model` replaces the resource's."""
        settings = self.settings()
        return CachedLLMClient(replace(settings, model=model) if model else settings, warehouse, on_progress=on_progress)
