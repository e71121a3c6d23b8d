"""Scoring one shard with the promoted model: the `product_attribute_scores` step.

The shard's products are scored with the newest promoted model (never a rejected candidate,
`model_registry.py`), reusing the cached embeddings of unchanged products; the new ones join
the cache (`product_embeddings`). The assigned attributes are checked against the shard's
catalog labels, else its silver test products (`gates.check_assignments`), and the scores
replace the shard's rows only when that gate does not block: scores that fail it never
reach the pages, and the shard keeps its last good rows.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from .clip_model import load_encoder
from .compute import ComputeSettings, resolve_compute
from .gates import AssignmentCheck, GateResult, ShardGateConfig, catalog_label_domain_of, check_assignments
from .model_registry import ModelRegistry, RegisteredModel
from .scoring import SCORING_ENGINES, ScoringSettings, ShardScores, local_embedder, score_products
from .spark_scoring import spark_embedder
from .warehouse import Warehouse

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardScoring:
    shard: str
    model: RegisteredModel
    products: int
    scored: ShardScores
    scores: pl.DataFrame  # SCORE_TABLE_SCHEMA: the shard's rows, published or not
    check: AssignmentCheck
    gate: GateResult

    @property
    def published(self) -> bool:
        return not self.gate.blocks

    @property
    def assigned(self) -> pl.DataFrame:
        return self.scores.filter(pl.col("assigned"))

    def assigned_per_key(self) -> dict[str, int]:
        return dict(self.assigned.group_by("key").len().sort("key").iter_rows())


def score_shard(
    warehouse: Warehouse,
    models_dir: Path,
    shard: str,
    settings: ScoringSettings,
    gate: ShardGateConfig,
    spark_session: Callable[[], object] | None = None,
    log: logging.Logger = log,
    compute: ComputeSettings = ComputeSettings(),
    model_inputs: Path | None = None,
) -> ShardScoring:
    """Score the shard, store its new embeddings, check its assignments, and store its
    scores when the check does not block. `model_inputs`: the data home's stores of decoded
    images and title tokens (in-process encoding reads and fills them). `spark_session` gives the session for the spark
    engine (asked for only then: creating one starts a JVM or a connection)."""
    model = ModelRegistry(warehouse, models_dir).current()  # never a rejected candidate
    encoder, extra = load_encoder(model.path, resolve_compute(compute))  # the driver embeds the attributes: in the precision of the products
    products = warehouse.read_table("catalog_products", "shard = ?", [shard])
    cached = warehouse.read("SELECT * FROM product_embeddings WHERE model_version = ?", [model.version]) if warehouse.has_table("product_embeddings") else pl.DataFrame()

    def progress(done: int, total: int) -> None:
        log.info("shard %s: encoded %d/%d products", shard, done, total)

    if settings.engine not in SCORING_ENGINES:
        raise ValueError(f"engine must be 'local' or 'spark', got {settings.engine!r}")
    embedder = local_embedder(encoder, settings.batch_size, model_inputs if settings.keep_model_inputs else None)
    if settings.engine == "spark":
        if spark_session is None:
            raise ValueError("engine 'spark' needs a Spark session")
        # Python workers must run this environment (torch, open_clip, pandas); takes effect
        # when the session is created here (a lazy session is created on first use).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        embedder = spark_embedder(spark_session(), model.path, model.version, settings.batch_size, settings.spark_task_threads, compute)
    scored = score_products(encoder, extra, model.version, products, cached, settings.batch_size, progress, embedder)
    log.info("shard %s: encoded %d products (%.1f/s), reused %d cached embeddings", shard, scored.encoded, scored.products_per_second, scored.reused)
    warehouse.upsert("product_embeddings", scored.new_embeddings, ["model_version", "product_id"])

    scores = scored.scores.with_columns(pl.lit(shard).alias("shard"), pl.lit(model.version).alias("model_version"))
    check = check_assignments(
        scores.filter(pl.col("assigned")).select("product_id", "key", "value"), products, warehouse.read_table("raw_attributes", "shard = ?", [shard]),
        warehouse.read_table("curated_vocabulary"), extra.get("split", {}), catalog_label_domain_of(warehouse),
    )
    judged = check.gate(gate.min_assignment_precision, gate.min_checked)
    if judged.blocks:
        log.error("shard %s: scores not published (%s); its last good scores stay", shard, judged.description)
    else:
        warehouse.replace_rows("product_attribute_scores", scores, "shard", [shard])
    return ShardScoring(shard, model, products.height, scored, scores, check, judged)
