"""Where things live: the data home and the catalog, from the environment.

Every stage reads its own tunables from its own dataclass; this module only holds the
locations that several stages share.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_CATALOG = REPO_ROOT / "data" / "sample_catalog"
VOCABULARY_OVERRIDES = REPO_ROOT / "data" / "vocabulary_overrides.csv"
SHARED_DATASET = REPO_ROOT.parent / "shared" / "datasets" / "fashion-product-images-small"


def default_home() -> Path:
    """`PINLANDING_HOME`, else `.pinlanding/` in the repository (git-ignored)."""
    return Path(os.environ.get("PINLANDING_HOME") or REPO_ROOT / ".pinlanding").resolve()


def default_catalog() -> Path:
    """`PINLANDING_CATALOG`, else the sample catalog the project generates in `data/`."""
    return Path(os.environ.get("PINLANDING_CATALOG") or SAMPLE_CATALOG).resolve()


def default_shard_column() -> str | None:
    """`PINLANDING_SHARD_COLUMN`, else None: the layout's default (masterCategory / shard)."""
    return os.environ.get("PINLANDING_SHARD_COLUMN") or None
WAREHOUSE_FILE = "warehouse.duckdb"  # under the data home; DuckDB names its catalog after the stem


@dataclass(frozen=True)
class DataHome:
    """The directory that holds everything a run produces."""

    root: Path

    @property
    def warehouse(self) -> Path:
        return self.root / WAREHOUSE_FILE

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def model_inputs(self) -> Path:
        """The towers' inputs: decoded images per size, title tokens (core/model_inputs.py)."""
        return self.root / "model-inputs"

    @property
    def site(self) -> Path:
        """A symlink to the live build under `site-builds/` (core/site.py), made by the
        first publish."""
        return self.root / "site"

    @property
    def publish_lock(self) -> Path:
        """Held by a publish for its whole step: publishes of this home queue."""
        return self.root / "publish.lock"

    @property
    def spark_inputs(self) -> Path:
        """Where a local Spark session's inputs are staged as Parquet (a folder per run)."""
        return self.root / "spark-input"

    @property
    def exports(self) -> Path:
        return self.root / "exports"

    def ensure(self) -> "DataHome":
        for path in (self.root, self.models, self.exports):  # not the site: publishing links it
            path.mkdir(parents=True, exist_ok=True)
        return self
