"""Where trained encoders live, and which one scoring may use.

A training run saves its candidate in a staging folder of its own; the candidate is
*promoted* (moved to `models/clip_model/<version>`, registered as `promoted`) only when no
blocking gate failed, and *rejected* otherwise (moved to `models/clip_model/rejected/
<version>` for inspection, registered as `rejected` with the reason). Scoring reads only the
newest promoted model, so a rejected model is never used, by this run or by any refresh a
sensor starts later. The registry (warehouse table `clip_model`) keeps every version.
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from .clip_model import SavedModel
from .warehouse import Warehouse

REGISTRY_TABLE = "clip_model"
REGISTRY_SCHEMA = {
    "version": pl.String,
    "path": pl.String,
    "status": pl.String,  # promoted | rejected
    "reason": pl.String,  # why rejected (the blocking gates), or null
    "created_at": pl.String,  # ISO-8601 UTC
    "evaluation": pl.String,  # JSON: truth set -> method -> figures
}


class NoPromotedModel(LookupError):
    """Nothing to score with: no model has passed its gates yet."""


@dataclass(frozen=True)
class RegisteredModel:
    version: str
    path: Path
    status: str
    reason: str | None


class ModelRegistry:
    def __init__(self, warehouse: Warehouse, models_dir: Path):
        self.warehouse = warehouse
        self.root = Path(models_dir) / REGISTRY_TABLE

    def staging_dir(self) -> Path:
        """A fresh folder for one training run's candidate (runs never share one)."""
        return self.root / "staging" / uuid.uuid4().hex

    def promote(self, saved: SavedModel, evaluation: dict) -> RegisteredModel:
        return self._register(saved, "promoted", None, evaluation, self.root / saved.version)

    def reject(self, saved: SavedModel, evaluation: dict, reason: str) -> RegisteredModel:
        return self._register(saved, "rejected", reason, evaluation, self.root / "rejected" / saved.version)

    def _register(self, saved: SavedModel, status: str, reason: str | None, evaluation: dict, target: Path) -> RegisteredModel:
        if target.exists():  # the same weights trained again: the new copy replaces the old
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        saved.directory.rename(target)
        row = {
            "version": saved.version,
            "path": str(target),
            "status": status,
            "reason": reason,
            "created_at": datetime.now(timezone.utc).isoformat(),
            "evaluation": json.dumps(evaluation, default=float),
        }
        # Keyed by version and status: the same weights can be promoted by one run and rejected
        # by a later one with stricter gates; the promoted copy stays in use.
        self.warehouse.upsert(REGISTRY_TABLE, pl.DataFrame([row], schema=REGISTRY_SCHEMA), ["version", "status"])
        return RegisteredModel(saved.version, target, status, reason)

    def history(self) -> pl.DataFrame:
        registry = self.warehouse.read_table(REGISTRY_TABLE)
        return registry.sort("created_at") if not registry.is_empty() else pl.DataFrame(schema=REGISTRY_SCHEMA)

    def current(self) -> RegisteredModel:
        """The newest promoted model; `NoPromotedModel` (saying why) when there is none."""
        history = self.history()
        promoted = history.filter(pl.col("status") == "promoted")
        if promoted.is_empty():
            rejected = history.filter(pl.col("status") == "rejected")
            why = f"; the last training was rejected: {rejected.row(-1, named=True)['reason']}" if rejected.height else ""
            raise NoPromotedModel(f"no promoted clip_model to score with: materialize clip_model (train_model) until it passes its gates{why}")
        row = promoted.row(-1, named=True)
        return RegisteredModel(row["version"], Path(row["path"]), row["status"], row["reason"])
